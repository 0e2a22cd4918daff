//! The run counters: kept once, in the checkpoint while a run is going and in the manifest
//! when it is committed (flattened, so each counter is a top-level field of both).

use serde::{Deserialize, Serialize};

/// Running totals of a snapshot (summed over resumed runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Items read by the scan (before any filter).
    pub items_scanned: u64,
    /// Items written to data files.
    pub items_written: u64,
    /// Items left out because their TTL had passed (`--skip-expired`).
    #[serde(default)]
    pub items_expired: u64,
    /// Scan pages.
    pub pages: u64,
    /// Read capacity consumed.
    pub consumed_rcu: f64,
    /// Scan requests throttled.
    pub throttled_requests: u64,
    /// Scan requests retried.
    pub retried_requests: u64,
}

impl Totals {
    /// Add the totals of `other` (of other pages).
    pub(crate) fn add(&mut self, other: &Totals) {
        self.items_scanned += other.items_scanned;
        self.items_written += other.items_written;
        self.items_expired += other.items_expired;
        self.pages += other.pages;
        self.consumed_rcu += other.consumed_rcu;
        self.throttled_requests += other.throttled_requests;
        self.retried_requests += other.retried_requests;
    }
}
