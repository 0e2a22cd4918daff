//! Table formats: where a finished run is published.
//!
//! A run (a scan, an export conversion, an `apply`) produces closed data files, all with one
//! schema, and a record of itself (a [`crate::manifest::Manifest`]). A table format publishes
//! them atomically:
//! - [`TableFormat::Snapshot`]: the run's folder is the snapshot, and `_manifest.json`,
//!   written last, is the commit;
//! - [`TableFormat::Delta`]: the run writes into a `run=<utc-id>/` folder of a Delta Lake table
//!   and [`delta`] publishes it as the table's next version.
//!
//! Checkpoints, `--resume` and the conversion are the run's and the same for every format.

pub mod delta;
mod formats;
mod kind;
mod publish;
mod pulls;
mod snapshot;

pub(crate) use kind::check_kind;
pub(crate) use publish::{Continue, FinishedRun, Published};

/// The folder of a Delta table's log under the table root.
pub const DELTA_LOG: &str = "_delta_log";

use serde::{Deserialize, Serialize};

/// How a Delta table that a run creates names its columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ColumnMapping {
    /// Plain columns, readable by every Delta reader: characters Delta does not allow in a
    /// column name (space, `,;{}()=`, newline, tab) become `_` (see the type mapping).
    #[default]
    None,
    /// Delta column mapping by name (protocol reader 2 / writer 5): every attribute keeps its
    /// exact name; the data files store columns under physical names.
    Name,
}

impl ColumnMapping {
    /// True for the default, plain columns.
    pub fn is_none(&self) -> bool {
        *self == ColumnMapping::None
    }
}

/// How a run is published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// A folder of Parquet files committed by `_manifest.json`.
    #[default]
    Snapshot,
    /// A Delta Lake table: each run is one new table version (a full read replaces the
    /// rows; a pull or an incremental export is merged by primary key).
    Delta,
}
