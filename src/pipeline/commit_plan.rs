//! What publishing a finished run needs besides its checkpoint ([`CommitPlan`]): fixed when
//! the run starts, kept in a shard's record so `ddbsnap commit` needs neither the options nor
//! the table.

use serde::{Deserialize, Serialize};

use crate::config::SnapshotConfig;
use crate::error::Result;
use crate::format::TableFormat;
use crate::manifest::OutputOptions;
use crate::sink::writer::WriterOptions;
use crate::source::export::ExportSummary;
use crate::table::TableInfo;
use crate::throttle::ReadBudget;

/// What publishing a finished run needs besides its checkpoint. A shard keeps it in its
/// record, so `ddbsnap commit` needs neither the run's options nor access to the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitPlan {
    /// The table's region, as the manifest records it.
    pub region: String,
    /// The table (or, for a conversion, what is known of it).
    pub table: TableInfo,
    /// The timestamp window of an incremental pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<crate::filter::TimeFilter>,
    /// The export a conversion read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
    /// The read budget of the whole run (all shards together).
    pub read_budget: ReadBudget,
    /// Segments or readers at once.
    pub concurrency: u32,
    /// How the run is published.
    pub format: TableFormat,
    /// Strongly consistent reads.
    pub consistent_read: bool,
    /// The attributes `--columns` asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Data file, row group and upload part sizes (files re-encoded at the commit).
    pub sizes: FileSizes,
    /// What the published table holds, when the run's mode, window and export do not say it
    /// (`apply`: the change log's window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::window::Coverage>,
    /// When the whole table was last read into what this run continues (a pull carries it
    /// over; a full read is its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The run is one `run=` folder of a folder of pulls (`--filter-attr`), which readers read
    /// together with the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pulls: bool,
    /// The table's DynamoDB stream and where the run reads it from (`sync`); a stream run's
    /// own positions replace the shards' as it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<crate::source::stream::StreamState>,
    /// `sync --changes`: the table of changes the run's records are appended to, before the
    /// run is published (the table of changes first: see docs/streams.md).
    #[serde(skip)]
    pub changes: Option<crate::sink::Target>,
}

/// Sizes of the data files a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSizes {
    /// Target data file size.
    pub target_file_bytes: usize,
    /// Row group size.
    pub row_group_bytes: usize,
    /// Upload part size.
    pub part_bytes: usize,
}

impl CommitPlan {
    /// The plan of a run of `config` over `table`, its other parts at their defaults (no time
    /// window, no export, no read budget).
    pub(crate) fn new(config: &SnapshotConfig, region: &str, table: TableInfo) -> Self {
        CommitPlan {
            region: region.to_owned(),
            table,
            time: None,
            export: None,
            read_budget: ReadBudget::none(),
            concurrency: 1,
            format: config.output.format,
            consistent_read: config.read.consistent_read,
            columns: config.read.columns.clone(),
            sizes: FileSizes {
                target_file_bytes: config.output.target_file_bytes,
                row_group_bytes: config.output.row_group_bytes,
                part_bytes: config.output.part_bytes,
            },
            coverage: None,
            refreshed_at: None,
            pulls: config.read.time.is_some(),
            stream: config.run.stream.clone(),
            changes: None,
        }
    }

    /// How the run's files are written, with `options` (compression and numbers).
    pub(crate) fn writer_options(&self, options: &OutputOptions) -> Result<WriterOptions> {
        Ok(WriterOptions {
            compression: options.compression,
            zstd_level: options
                .zstd_level
                .unwrap_or(crate::config::DEFAULT_ZSTD_LEVEL),
            target_file_bytes: self.sizes.target_file_bytes,
            row_group_bytes: self.sizes.row_group_bytes,
            part_bytes: self.sizes.part_bytes,
            metadata: crate::sink::writer::file_metadata(&self.table.name, &self.table.key_schema)?,
            key_columns: key_columns(&self.table),
            file_stats: self.format == TableFormat::Delta,
            physical: None,
        })
    }
}

/// The names of the table's key attributes.
pub(super) fn key_columns(table: &TableInfo) -> Vec<String> {
    table.key_schema.iter().map(|k| k.name.clone()).collect()
}
