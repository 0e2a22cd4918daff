//! `_manifest.json`: the commit marker of a snapshot.
//!
//! Written last, with a single PUT, only after every data file is complete: a snapshot without
//! it is not a snapshot. It lists every data file (path, rows, bytes), the schema (as ddbsnap
//! column types, which keep the original DynamoDB types, and as Arrow), the table and its key
//! schema, the run's options and what the run cost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::convert::{Columns, NumberMode};
use crate::sink::{Compression, DataFile};
use crate::source::export::ExportSummary;
use crate::table::TableInfo;
use crate::window::{ChangeWindow, Coverage, Feed};

/// The run counters, flattened into the manifest.
pub use crate::totals::Totals;

/// Format identifier of this manifest layout.
pub const MANIFEST_FORMAT: &str = "ddbsnap.manifest.v1";

/// The committed description of one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Version of ddbsnap that wrote the snapshot.
    pub ddbsnap_version: String,
    /// The source table.
    pub table: TableInfo,
    /// AWS region of the table.
    pub region: String,
    /// Where the items came from: `scan`, `export` (converted from a DynamoDB export) or
    /// `apply`.
    pub mode: crate::mode::RunMode,
    /// What was scanned when not the whole table: index, columns, raw filter, timestamp window
    /// (a [`crate::filter::ScanSpec`]).
    pub filter: Option<serde_json::Value>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the manifest was written.
    pub finished_at: DateTime<Utc>,
    /// Scan segments (TotalSegments).
    pub segments: u32,
    /// Runs that made the snapshot: 1, or more when it was resumed (`--resume`).
    #[serde(default = "one")]
    pub runs: u32,
    /// Whether strongly consistent reads were used.
    pub consistent_read: bool,
    /// Items read (`items_scanned`), written (`items_written`) and left out as expired
    /// (`items_expired`), pages, read capacity consumed, requests throttled and retried.
    #[serde(flatten)]
    pub totals: crate::totals::Totals,
    /// The read budget of the run and where it came from.
    pub read_budget: crate::throttle::ReadBudget,
    /// The window an incremental pull covered and what it saw.
    pub watermark: Option<Watermark>,
    /// For `mode: export`, the export's summary (ARN, export time, type, item count).
    #[serde(default)]
    pub export: Option<crate::source::export::ExportSummary>,
    /// What the snapshot (or the Delta table, after this run's commit) holds: a full read as
    /// of a time, or the window of the change set applied last (see [`crate::window`]).
    /// Absent in snapshots written before ddbsnap recorded it: see [`Manifest::coverage`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// When the run that last read the whole table started: this run, for a full read; carried
    /// over from the run before by a pull (`--refresh-every` compares against it). Absent in
    /// runs written before ddbsnap recorded it: see [`Manifest::last_refresh`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// What a Delta table kept by `sync` has read of the table's DynamoDB stream after this
    /// run: the stream and each shard's position (a full load records where the stream is to
    /// be read from, every record it may have missed included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<crate::source::stream::StreamState>,
    /// Every data file of the snapshot.
    pub files: Vec<DataFile>,
    /// The one schema shared by every data file.
    pub schema: ManifestSchema,
    /// Output options of the run.
    pub options: OutputOptions,
}

impl Manifest {
    /// When the whole table was last read into what this run left: as recorded, or, for a
    /// run written before ddbsnap recorded it, the time of a full read it holds.
    pub fn last_refresh(&self) -> Option<DateTime<Utc>> {
        self.refreshed_at
            .or_else(|| full_read_at(self.coverage().as_ref()))
    }

    /// What the snapshot holds: as recorded, or, for a snapshot written before ddbsnap
    /// recorded it, as its mode, window and export say.
    pub fn coverage(&self) -> Option<Coverage> {
        self.coverage.clone().or_else(|| {
            derive_coverage(
                self.mode,
                self.watermark.as_ref(),
                self.export.as_ref(),
                Some(self.started_at),
            )
        })
    }
}

/// The time of the full read `coverage` is, if it is one.
pub(crate) fn full_read_at(coverage: Option<&Coverage>) -> Option<DateTime<Utc>> {
    match coverage {
        Some(Coverage::Full { at, .. }) => Some(*at),
        _ => None,
    }
}

/// What a run holds, from what it records: a pull's window, an incremental export's window,
/// a full export's time, or a scan's start (a full refresh). `None` for anything else.
pub(crate) fn derive_coverage(
    mode: crate::mode::RunMode,
    watermark: Option<&Watermark>,
    export: Option<&ExportSummary>,
    started_at: Option<DateTime<Utc>>,
) -> Option<Coverage> {
    if let Some(w) = watermark {
        return Some(Coverage::Changes { window: w.window() });
    }
    if let Some(export) = export {
        return match export.change_window() {
            Ok(Some(window)) => Some(Coverage::Changes { window }),
            Ok(None) => export.export_time().map(|at| Coverage::Full {
                at,
                by: "export".into(),
            }),
            Err(_) => None,
        };
    }
    match (mode, started_at) {
        (crate::mode::RunMode::Scan, Some(at)) => Some(Coverage::Full {
            at,
            by: "scan".into(),
        }),
        _ => None,
    }
}

/// The schema of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestSchema {
    /// Column types with the original DynamoDB types (also in each file's `ddbsnap.columns`).
    pub columns: Columns,
    /// The Arrow schema of every data file.
    pub arrow: arrow_schema::Schema,
    /// What inferred `columns` (every attribute's kinds and number statistics): a later run
    /// of a folder of pulls widens it by its own, so every run keeps one schema. Absent in
    /// snapshots written before ddbsnap recorded it: see [`ManifestSchema::shape`].
    #[serde(default, rename = "shape", skip_serializing_if = "Option::is_none")]
    pub inferred: Option<crate::convert::TableShape>,
}

impl ManifestSchema {
    /// The inference state of these columns: the recorded one, else one that covers them.
    pub fn shape(&self) -> crate::convert::TableShape {
        self.inferred
            .clone()
            .unwrap_or_else(|| crate::convert::TableShape::covering(&self.columns))
    }
}

/// What an incremental pull (`--filter-attr`) covered: the next `--since last` starts at
/// `window_end` minus the overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Watermark {
    /// The timestamp attribute.
    pub attribute: String,
    /// How it holds time.
    pub format: crate::filter::TsFormat,
    /// Inclusive lower bound asked for.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound asked for.
    pub until: Option<DateTime<Utc>>,
    /// Where the window ends for the next run: `until`, or the run's start when it is earlier
    /// (items written after the scan started may not have been seen).
    pub window_end: DateTime<Utc>,
    /// The latest timestamp written, and the counts of items excluded.
    #[serde(flatten)]
    pub stats: crate::filter::WindowStats,
}

impl Watermark {
    /// The pull's change window: from `--since` (1970-01-01 without one: every timestamp) to
    /// [`Watermark::window_end`].
    pub fn window(&self) -> ChangeWindow {
        ChangeWindow {
            feed: Feed::Pull {
                attribute: self.attribute.clone(),
            },
            from: self.since.unwrap_or(DateTime::UNIX_EPOCH),
            to: self.window_end,
            id: None,
        }
    }
}

fn one() -> u32 {
    1
}

/// Output options recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputOptions {
    /// Parquet compression.
    pub compression: Compression,
    /// Zstandard level, when the compression is zstd.
    pub zstd_level: Option<i32>,
    /// Number mapping.
    pub numbers: NumberMode,
    /// How a Delta table the run creates names its columns.
    #[serde(default, skip_serializing_if = "crate::format::ColumnMapping::is_none")]
    pub column_mapping: crate::format::ColumnMapping,
}

impl OutputOptions {
    /// The options as command-line flags, for messages.
    pub fn describe(&self) -> String {
        use clap::ValueEnum;
        let name = |v: Option<clap::builder::PossibleValue>| {
            v.map(|v| v.get_name().to_owned()).unwrap_or_default()
        };
        let codec = name(self.compression.to_possible_value());
        let numbers = name(self.numbers.to_possible_value());
        let mapping = match self.column_mapping.is_none() {
            true => String::new(),
            false => format!(
                " --column-mapping {}",
                name(self.column_mapping.to_possible_value())
            ),
        };
        match self.zstd_level {
            Some(level) => {
                format!("--compression {codec} --zstd-level {level} --numbers {numbers}{mapping}")
            }
            None => format!("--compression {codec} --numbers {numbers}{mapping}"),
        }
    }
}
