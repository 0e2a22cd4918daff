//! Where items come from. Today: a segmented parallel Scan ([`scan`]).

pub(crate) mod raw;
pub(crate) mod scan;
