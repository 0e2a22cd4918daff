//! The seam every table format implements ([`Publisher`]): publish a finished run, say whether
//! a run is already in the table, where the table is current, and whether a change set may be
//! applied to it. [`TableFormat::publisher`](super::TableFormat::publisher) gives each
//! format's implementation; nothing outside `format` needs to know which one it is.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::delta::DeltaCommit;
use crate::convert::{NumberMode, TableShape};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::sink::Target;
use crate::sink::writer::WriterOptions;
use crate::window::{Admission, ChangeWindow, Feed, OnGap};

/// A finished run, its files closed and brought to one schema, as a format publishes it.
pub(crate) struct FinishedRun<'a> {
    /// The run's folder.
    pub(crate) target: &'a Target,
    /// The run's record: its files, schema, totals and what it covers.
    pub(crate) manifest: &'a Manifest,
    /// The run's inferred shape (a Delta MERGE widens the table's by it).
    pub(crate) shape: &'a TableShape,
    /// How files rewritten while publishing are written (a Delta MERGE, earlier runs of a
    /// folder of pulls).
    pub(crate) writer: WriterOptions,
    pub(crate) progress: &'a Arc<dyn Progress>,
    /// The run is one of a folder of pulls, read together with the others.
    pub(crate) pulls: bool,
}

/// Where a published run is read, and the table version it became.
pub(crate) struct Published {
    /// What readers open: the snapshot folder, or the Delta table's root.
    pub(crate) url: String,
    /// The Delta commit, for a Delta table.
    pub(crate) delta: Option<DeltaCommit>,
    /// Files of earlier runs re-encoded to the run's schema (a folder of pulls).
    pub(crate) rewritten: usize,
}

/// Where the table a change set continues stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Continue {
    /// The table holds every change up to here.
    pub(crate) until: DateTime<Utc>,
    /// When the whole table was last read into it, when known.
    pub(crate) refreshed_at: Option<DateTime<Utc>>,
}

/// What a table format does with runs.
#[async_trait]
pub(crate) trait Publisher: Send + Sync {
    /// The shape `run`'s files are written with (numbers as `numbers`), the run's own
    /// `shape` being what it read: where readers read the run together with earlier ones (a
    /// folder of `pulls`), it also covers theirs, so every run has one schema.
    async fn shape(
        &self,
        run: &Target,
        shape: &TableShape,
        numbers: NumberMode,
        pulls: bool,
    ) -> Result<TableShape> {
        let _ = (run, numbers, pulls);
        Ok(shape.clone())
    }

    /// Publish `run` atomically: readers see the table without it or with all of it.
    async fn publish(&self, run: FinishedRun<'_>) -> Result<Published>;

    /// After the run's checkpoint is gone: remove what the published table does not need
    /// (best effort; what a crash leaves, vacuum removes).
    async fn tidy(&self, target: &Target, manifest: &Manifest);

    /// The key attributes the table at `root` records, when it records them (a MERGE by other
    /// keys would corrupt it).
    async fn keys(&self, root: &Target) -> Result<Option<Vec<String>>>;

    /// The table version that holds the run in its folder `target`, when it is committed there
    /// by a commit that did not leave a manifest in the folder.
    async fn committed_version(&self, target: &Target) -> Result<Option<u64>>;

    /// Where a change set of `feed` continues the table at `root` (`--since last`): `None`
    /// when there is no table or committed run yet; a clear error when the table holds
    /// something such a change set cannot continue.
    async fn continues(&self, root: &Target, feed: &Feed) -> Result<Option<Continue>>;

    /// Whether the change set `change` may be applied to the table at `root` (see
    /// [`crate::window::admit`]), decided before anything is written.
    async fn admit(&self, root: &Target, change: &ChangeWindow, on_gap: OnGap)
    -> Result<Admission>;
}
