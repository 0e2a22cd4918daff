//! `_checkpoint.json`: where an unfinished snapshot stands, so `--resume` can continue it.
//!
//! The checkpoint is written at the start of a run and again each time a data file is closed
//! (and on Ctrl-C, after the open file is closed), always with one `put` of the whole document:
//! a single PUT on S3, a write-then-rename on local disk, so a reader sees either the previous
//! checkpoint or the new one, never a torn one.
//!
//! What it holds, and the invariant that makes resuming exact (contract C5): for every segment,
//! the position up to which *all* of its items are in the closed data files it lists, and no
//! item past that position is in them. Files close only between pages, so a position is always
//! a LastEvaluatedKey DynamoDB returned (stored as DynamoDB JSON, so every key type round-trips
//! exactly). Resuming lists the data files, deletes those the checkpoint does not name (the file
//! that was open when the run died, its staging files), and scans each unfinished segment from
//! its position: every item ends up in exactly one file (contract C1).
//!
//! Conversions of an export and `apply` keep one position per source (a data file of the
//! export; the one input of `apply`): the items of that source already in closed files
//! ([`Position::Lines`]), and `source` names what was read.
//!
//! It also keeps what is needed to finish as if the run had never stopped: the schema
//! inference state (so a column first seen after the resume still gives one schema across all
//! files), the schema each file was written with (so files written under an older schema are
//! re-encoded at commit), the totals so far, and the options that must not change.

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::convert::{Columns, TableShape};
pub(crate) use crate::cursor::Position;
use crate::error::{Error, Result};
use crate::manifest::OutputOptions;
use crate::mode::RunMode;
use crate::sink::{DataFile, Target, next_data_file_index};
pub(crate) use crate::totals::Totals;

/// Format identifier of this checkpoint layout.
pub(crate) const CHECKPOINT_FORMAT: &str = "ddbsnap.checkpoint.v1";

/// The state of an unfinished snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Version of ddbsnap that wrote it.
    pub ddbsnap_version: String,
    /// Table name.
    pub table: String,
    /// Where the items come from: `scan`, `export` (a converted export) or `apply`.
    pub mode: RunMode,
    /// Where the items come from when not a table scan: the export directory, or the change
    /// log and the base snapshot of `apply`; a resume must read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What is scanned when not the whole table (a [`crate::filter::ScanSpec`], its timestamp
    /// window resolved); a resume must ask for the same.
    pub filter: Option<serde_json::Value>,
    /// Scan segments (TotalSegments); a resume must use the same count.
    pub segments: u32,
    /// Output options; a resume must use the same ones.
    pub options: OutputOptions,
    /// When the first run of this snapshot started.
    pub started_at: DateTime<Utc>,
    /// When this checkpoint was written.
    pub updated_at: DateTime<Utc>,
    /// Runs that contributed (1 for a run never resumed).
    pub runs: u32,
    /// One position per segment (per data file of an export), indexed by segment number.
    pub positions: Vec<Position>,
    /// Every closed data file, with the schema it was written with.
    pub files: Vec<CheckpointFile>,
    /// Schema inference state over every item in `files`.
    pub shape: TableShape,
    /// Totals over every item in `files`.
    pub totals: Totals,
    /// What the timestamp window check saw, for an incremental pull.
    #[serde(default)]
    pub window: Option<crate::filter::WindowStats>,
    /// The shard of a split run this checkpoint is of (its positions of other shards' parts
    /// are `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// What the commit needs: saved by a shard once its part is finished (then the checkpoint
    /// is the shard's record), and by `ddbsnap commit` in the checkpoint it joins the records
    /// into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<crate::pipeline::CommitPlan>,
}

/// A closed data file and the schema it was written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckpointFile {
    /// Path, rows and bytes.
    #[serde(flatten)]
    pub file: DataFile,
    /// The schema of the file.
    pub columns: Columns,
}

impl CheckpointFile {
    /// Record a closed file.
    pub(crate) fn new(file: &DataFile) -> Self {
        CheckpointFile {
            columns: file.columns.clone(),
            file: file.clone(),
        }
    }

    /// The file as the pipeline tracks it.
    pub(crate) fn data_file(&self) -> DataFile {
        DataFile {
            columns: self.columns.clone(),
            ..self.file.clone()
        }
    }
}

impl Checkpoint {
    /// This new checkpoint, for `shard`: the other shards' segments are not its to read.
    pub(crate) fn for_shard(mut self, shard: crate::shard::Shard) -> Self {
        for (segment, position) in self.positions.iter_mut().enumerate() {
            if !shard.owns(segment) {
                *position = Position::Done;
            }
        }
        self.shard = Some(shard);
        self
    }

    /// Segments whose every item is already in closed files.
    pub(crate) fn segments_done(&self) -> usize {
        self.positions
            .iter()
            .filter(|p| **p == Position::Done)
            .count()
    }
}

/// The first free data file index after `files`.
pub(crate) fn next_file_index(files: &[CheckpointFile]) -> usize {
    next_data_file_index(files.iter().map(|f| f.file.path.as_str()))
}

/// Read `_checkpoint.json`, `None` when there is none.
pub(crate) async fn read_checkpoint(target: &Target) -> Result<Option<Checkpoint>> {
    let name = target.checkpoint_name();
    let path = target.path(&name);
    let bytes = match target.store.get(&path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| target.error(&format!("reading {name}"), e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(target.error(&format!("reading {name}"), e)),
    };
    let checkpoint: Checkpoint =
        serde_json::from_slice(&bytes).map_err(|e| Error::Destination {
            url: target.url.clone(),
            message: format!(
                "{name} cannot be read ({e}); run again with --overwrite to start over"
            ),
            source: Some(Box::new(e)),
        })?;
    if checkpoint.format != CHECKPOINT_FORMAT {
        return Err(Error::Destination {
            url: target.url.clone(),
            message: format!(
                "{name} has format '{}', this ddbsnap reads '{CHECKPOINT_FORMAT}'; \
                 resume with the version that wrote it ({}) or start over with --overwrite",
                checkpoint.format, checkpoint.ddbsnap_version
            ),
            source: None,
        });
    }
    Ok(Some(checkpoint))
}

/// Replace `_checkpoint.json` with `checkpoint` in one `put`.
pub(crate) async fn write_checkpoint(target: &Target, checkpoint: &Checkpoint) -> Result<()> {
    let body = serde_json::to_vec(checkpoint)
        .map_err(|e| Error::Internal(format!("serializing the checkpoint: {e}")))?;
    target
        .store
        .put(&target.path(&target.checkpoint_name()), body.into())
        .await
        .map_err(|e| target.error(&format!("writing {}", target.checkpoint_name()), e))?;
    Ok(())
}

/// Write the first `_checkpoint.json` of a new run, only if there is none: the run's claim on
/// its folder, so that two runs started at the same moment (into the same `run=` folder of a
/// dataset or Delta table, or into one snapshot folder) cannot both write there.
pub(crate) async fn create_checkpoint(target: &Target, checkpoint: &Checkpoint) -> Result<()> {
    let body = serde_json::to_vec(checkpoint)
        .map_err(|e| Error::Internal(format!("serializing the checkpoint: {e}")))?;
    let options = object_store::PutOptions {
        mode: object_store::PutMode::Create,
        ..Default::default()
    };
    match target
        .store
        .put_opts(
            &target.path(&target.checkpoint_name()),
            body.into(),
            options,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(Error::AlreadyExists {
            url: target.url().to_owned(),
            what: "was just claimed by another run started at the same moment; let that run \
                   finish, then run again"
                .into(),
        }),
        Err(e) => Err(target.error(&format!("writing {}", target.checkpoint_name()), e)),
    }
}
