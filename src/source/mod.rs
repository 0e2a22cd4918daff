//! Where items come from. Today: a segmented parallel Scan ([`scan`]).

pub(crate) mod scan;
