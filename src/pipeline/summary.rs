//! What a finished run reports.

use serde::{Deserialize, Serialize};

pub use crate::format::delta::{DeltaCommit, MergeStats};
use crate::manifest::{Manifest, Watermark};
use crate::sink::Target;
use crate::table::TableInfo;
use crate::throttle::ReadBudget;

/// What a finished snapshot run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Summary {
    /// Snapshot root.
    pub url: String,
    /// Table name.
    pub table: String,
    /// Items written.
    pub items: u64,
    /// Items read by the scan.
    pub items_scanned: u64,
    /// Items left out because their TTL had passed (`--skip-expired`).
    pub items_expired: u64,
    /// Data files.
    pub files: usize,
    /// Total bytes of the data files.
    pub bytes: u64,
    /// Read capacity consumed.
    pub consumed_rcu: f64,
    /// Scan pages.
    pub pages: u64,
    /// Segments (TotalSegments).
    pub segments: u32,
    /// The read budget and where it came from.
    pub read_budget: ReadBudget,
    /// Segments scanned at once.
    pub concurrency: u32,
    /// Scan requests DynamoDB throttled (each retried).
    pub throttled_requests: u64,
    /// Scan requests retried (throttled or failed).
    pub retried_requests: u64,
    /// Files re-encoded because the schema widened after they were written.
    pub files_rewritten: usize,
    /// Runs that made the snapshot (more than 1 after `--resume`); totals cover all of them.
    pub runs: u32,
    /// `--resume` found the snapshot already committed and did nothing.
    pub already_committed: bool,
    /// For an incremental pull: the window covered, the latest timestamp written, and the items
    /// left out for a missing or unreadable timestamp.
    pub watermark: Option<Watermark>,
    /// With `--format delta`: the table version the run was committed as.
    pub delta: Option<DeltaCommit>,
    /// `sync --changes`: the version of the table of changes the run's records were appended
    /// as (none before the table has a record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<DeltaCommit>,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Attributes `--columns` asked for that no item written has: a typo, or attributes this
    /// table does not have (names are case-sensitive).
    #[serde(default)]
    pub columns_not_found: Vec<String>,
    /// The shard of a split run this run was: its part is finished, nothing is committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// The change set was the one the table applied last: nothing was written (see
    /// [`crate::window`]).
    #[serde(default)]
    pub already_applied: bool,
    /// What the run says about its change window: why it was already applied, the gap that
    /// `--on-gap force` applied it across, or the gap that `--on-gap refresh` read the whole
    /// table again for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_note: Option<String>,
}

impl Summary {
    /// The summary of the snapshot `manifest` describes; the run's own figures (concurrency,
    /// files rewritten, seconds) are left at zero for the caller to fill in.
    pub(super) fn of_manifest(
        target: &Target,
        manifest: &Manifest,
        already_committed: bool,
    ) -> Self {
        Summary {
            url: target.url.clone(),
            table: manifest.table.name.clone(),
            items: manifest.totals.items_written,
            items_scanned: manifest.totals.items_scanned,
            items_expired: manifest.totals.items_expired,
            files: manifest.files.len(),
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            consumed_rcu: manifest.totals.consumed_rcu,
            pages: manifest.totals.pages,
            segments: manifest.segments,
            read_budget: manifest.read_budget.clone(),
            concurrency: 0,
            throttled_requests: manifest.totals.throttled_requests,
            retried_requests: manifest.totals.retried_requests,
            files_rewritten: 0,
            runs: manifest.runs,
            already_committed,
            watermark: manifest.watermark.clone(),
            delta: None,
            changes: None,
            seconds: 0.0,
            columns_not_found: Vec::new(),
            shard: None,
            already_applied: false,
            window_note: None,
        }
    }

    /// The summary of a run that found its change set already applied to the table at `url`
    /// and wrote nothing; `note` says so.
    pub(super) fn already_applied(url: &str, table: &TableInfo, note: String) -> Self {
        Summary {
            url: url.to_owned(),
            table: table.name.clone(),
            already_applied: true,
            window_note: Some(note),
            ..Summary::default()
        }
    }
}
