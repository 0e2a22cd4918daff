//! Where items come from. Today: a segmented parallel Scan (`scan`) whose responses are
//! parsed off the network tasks (`raw`).

pub(crate) mod raw;
pub(crate) mod scan;
