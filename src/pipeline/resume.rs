//! How a run starts and stops: a new run's checkpoint, or the unfinished run `--resume`
//! continues (checked against this run's options and brought back to its checkpoint), the
//! committed run it finds instead, and what a failure leaves behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CHECKPOINT_FORMAT, Checkpoint, Position, Totals, read_checkpoint};
use crate::config::SnapshotConfig;
use crate::convert::TableShape;
use crate::error::{Error, Result};
use crate::filter::WindowStats;
use crate::manifest::{Manifest, OutputOptions};
use crate::mode::RunMode;
use crate::progress::{Progress, ProgressEvent};
use crate::sink::reader::read_manifest;
use crate::sink::{CHECKPOINT_FILE, MANIFEST_FILE, Target, published_name};

/// What every run carries from its entry point to its end: the options, where progress goes,
/// what stops it, and when it started (the monotonic clock for its duration, the wall clock
/// for its records).
#[derive(Clone)]
pub(super) struct RunContext<'a> {
    pub(super) config: &'a SnapshotConfig,
    pub(super) progress: Arc<dyn Progress>,
    pub(super) cancel: CancellationToken,
    pub(super) started: (Instant, chrono::DateTime<Utc>),
}

impl<'a> RunContext<'a> {
    /// A run of `config` starting now.
    pub(super) fn new(
        config: &'a SnapshotConfig,
        progress: Arc<dyn Progress>,
        cancel: CancellationToken,
    ) -> Self {
        RunContext {
            config,
            progress,
            cancel,
            started: (Instant::now(), Utc::now()),
        }
    }

    /// The same run with other options (a full export instead of an incremental one, a
    /// resumed conversion), started when it was.
    pub(super) fn with_config<'b>(&self, config: &'b SnapshotConfig) -> RunContext<'b> {
        RunContext {
            config,
            progress: Arc::clone(&self.progress),
            cancel: self.cancel.clone(),
            started: self.started,
        }
    }

    /// This run as one of several it is split into, starting now (one export window).
    pub(super) fn starting_now(mut self) -> Self {
        self.started = (Instant::now(), Utc::now());
        self
    }
}

/// Where a run's items come from, as its checkpoint records it: a resume must read the same.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Origin {
    /// The run mode.
    pub(super) mode: RunMode,
    /// What is read when not the table: the export directory, or the change log and the base
    /// snapshot of `apply`.
    pub(super) source: Option<String>,
    /// What is scanned when not the whole table (a [`crate::filter::ScanSpec`]).
    pub(super) filter: Option<serde_json::Value>,
}

/// Run `work` into `destination`; when it fails, remove the local folders that opening the
/// destination created if the run left nothing in them, so a refused run leaves the
/// destination as it found it. (A run that saved a checkpoint keeps its folder.)
pub(super) async fn leaving_no_trace<T>(
    destination: &crate::sink::Destination,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let created = destination.missing_local_root();
    let result = work.await;
    if let (Err(_), Some(dir)) = (&result, created) {
        crate::sink::remove_empty_folders(&dir);
    }
    result
}

/// How a run starts (or what `--resume` found at the destination).
pub(super) enum Started {
    /// The run is committed already: nothing to do.
    Committed(Box<Manifest>),
    /// The checkpoint to run from (on `--resume`, the stray files of the unfinished run
    /// removed).
    Running(Box<Checkpoint>),
}

/// Check that the destination holds an unfinished snapshot of this table made with these
/// options (or a committed one), and bring it back to its checkpoint: data files the checkpoint does not name (the
/// file that was open when the run stopped, staging files) are deleted, and every file it names
/// must be there with its recorded size.
pub(super) async fn resume_point(
    target: &Target,
    table: &str,
    origin: &Origin,
    config: &SnapshotConfig,
) -> Result<Started> {
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(target, &owned).await? {
        return Ok(Started::Committed(Box::new(manifest)));
    }
    let Some(mut checkpoint) = read_checkpoint(target).await? else {
        let hint = if owned.is_empty() {
            "run without --resume"
        } else {
            "run without --resume and with --overwrite to replace the files there"
        };
        return Err(Error::invalid(format!(
            "{} has no {CHECKPOINT_FILE}, so there is nothing to resume; {hint}",
            target.url
        )));
    };
    same_run(target, &checkpoint, (table, origin), config)?;
    same_files(target, &mut checkpoint, &owned)?;
    // What the run (or this shard) wrote and the checkpoint does not name: the file open
    // when it stopped, staging files. A shard leaves the other shards' files alone.
    for f in &owned {
        let listed = checkpoint.files.iter().any(|c| c.file.path == f.name);
        let stray = match target.shard() {
            None => f.name != CHECKPOINT_FILE,
            Some(_) => target.writes_data_file(&f.name),
        };
        if stray && !listed {
            target.delete(&f.location).await?;
        }
    }
    target.probe().await?;
    Ok(Started::Running(Box::new(checkpoint)))
}

/// Check that `checkpoint` is of a run of `table` from `origin` with the options of `config`.
fn same_run(
    target: &Target,
    checkpoint: &Checkpoint,
    (table, origin): (&str, &Origin),
    config: &SnapshotConfig,
) -> Result<()> {
    let Origin {
        mode,
        source,
        filter,
    } = origin;
    let mismatch = |what: String| {
        Error::invalid(format!(
            "cannot resume the snapshot at {}: {what}; resume with the options of the first \
             run, or start over with --overwrite",
            target.url
        ))
    };
    if checkpoint.table != table {
        return Err(mismatch(format!(
            "it is a snapshot of table '{}', not '{table}'",
            checkpoint.table
        )));
    }
    if checkpoint.mode != *mode {
        return Err(mismatch(format!(
            "it was made in {} mode, not {mode}",
            checkpoint.mode
        )));
    }
    if checkpoint.source != *source {
        return Err(mismatch(format!(
            "it was made from {} (this run reads {})",
            checkpoint.source.as_deref().unwrap_or("the table"),
            source.as_deref().unwrap_or("the table")
        )));
    }
    if checkpoint.filter != *filter {
        let show = |f: Option<&serde_json::Value>| f.map_or("none".to_owned(), |f| f.to_string());
        return Err(mismatch(format!(
            "it was made with index, columns and filters {} (this run asks for {})",
            show(checkpoint.filter.as_ref()),
            show(filter.as_ref())
        )));
    }
    if let Some(s) = config.read.segments
        && s != checkpoint.segments
    {
        return Err(mismatch(format!(
            "it was made with --segments {} (got --segments {s}); leave --segments out to \
             use the checkpoint's",
            checkpoint.segments
        )));
    }
    if checkpoint.positions.len() != checkpoint.segments as usize {
        return Err(Error::Destination {
            url: target.url.clone(),
            message: format!(
                "{CHECKPOINT_FILE} is inconsistent ({} positions for {} segments); start over \
                 with --overwrite",
                checkpoint.positions.len(),
                checkpoint.segments
            ),
            source: None,
        });
    }
    let options = output_options(config);
    if checkpoint.options != options {
        return Err(mismatch(format!(
            "it was made with {} (this run asks for {})",
            checkpoint.options.describe(),
            options.describe()
        )));
    }
    Ok(())
}

/// Check that every file `checkpoint` names is among the `owned` files with its recorded size:
/// where the run wrote it, or where a stopped commit already moved it (the checkpoint then
/// names it there).
fn same_files(
    target: &Target,
    checkpoint: &mut Checkpoint,
    owned: &[crate::sink::OwnedFile],
) -> Result<()> {
    let sizes: HashMap<&str, u64> = owned.iter().map(|f| (f.name.as_str(), f.size)).collect();
    for f in &mut checkpoint.files {
        let moved = published_name(&f.file.path);
        if !sizes.contains_key(f.file.path.as_str()) && sizes.contains_key(moved) {
            f.file.path = moved.to_owned();
        }
        let found = sizes.get(f.file.path.as_str()).copied();
        if found != Some(f.file.bytes) {
            let what = match found {
                None => "is missing".to_owned(),
                Some(size) => format!("has {size} bytes instead of {}", f.file.bytes),
            };
            return Err(Error::Destination {
                url: target.url.clone(),
                message: format!(
                    "{CHECKPOINT_FILE} lists {} but it {what}; the snapshot cannot be resumed, \
                     start over with --overwrite",
                    f.file.path
                ),
                source: None,
            });
        }
    }
    Ok(())
}

/// The manifest of a committed snapshot among the destination's `owned` files, removing the
/// checkpoint that a run killed between its commit and the checkpoint's removal leaves.
pub(super) async fn committed(
    target: &Target,
    owned: &[crate::sink::OwnedFile],
) -> Result<Option<Manifest>> {
    if !owned.iter().any(|f| f.name == MANIFEST_FILE) {
        return Ok(None);
    }
    let manifest = read_manifest(target).await?;
    if owned.iter().any(|f| f.name == CHECKPOINT_FILE) {
        target.delete(&target.path(CHECKPOINT_FILE)).await?;
    }
    Ok(Some(manifest))
}

/// Remove what this run (or this shard) wrote to `target`: its checkpoint and data files.
pub(super) async fn discard(target: &Target) -> Result<()> {
    let checkpoint = target.checkpoint_name();
    for f in target.list_owned().await? {
        if f.name == checkpoint || target.writes_data_file(&f.name) {
            target.delete(&f.location).await?;
        }
    }
    Ok(())
}

/// A checkpoint `--resume` restored, counted as one more run and announced.
pub(super) fn continue_from(mut checkpoint: Checkpoint, progress: &dyn Progress) -> Checkpoint {
    checkpoint.runs += 1;
    progress.event(&ProgressEvent::Resumed {
        mode: checkpoint.mode,
        segments_done: checkpoint.segments_done(),
        segments: checkpoint.segments,
        files: checkpoint.files.len(),
        items: checkpoint.totals.items_written,
        bytes: checkpoint.files.iter().map(|f| f.file.bytes).sum(),
    });
    checkpoint
}

pub(super) fn output_options(config: &SnapshotConfig) -> OutputOptions {
    OutputOptions {
        compression: config.output.compression,
        zstd_level: (config.output.compression == crate::sink::Compression::Zstd)
            .then_some(config.output.zstd_level),
        numbers: config.output.numbers,
        column_mapping: config.output.column_mapping,
    }
}

/// Errors after the first checkpoint leave a resumable snapshot; say so, except where resuming
/// cannot help (the data itself, a bug) or the error already says it (Ctrl-C).
pub(super) fn resumable(error: Error, target: &Target) -> Error {
    match error {
        Error::Interrupted { .. }
        | Error::Incomplete { .. }
        | Error::Unrepresentable { .. }
        | Error::CorruptExport { .. }
        | Error::Format { .. }
        | Error::InvalidArgument { .. }
        | Error::StreamGap { .. }
        | Error::Internal(_) => error,
        other => Error::Incomplete {
            error: Box::new(other),
            url: target.url.clone(),
            checkpoint: target.checkpoint_name(),
            how: match target.shard() {
                None => {
                    "run the same command with --resume to continue (or with --overwrite to \
                     start over)"
                }
                Some(_) => "run the same shard again to continue it",
            },
        },
    }
}

/// The checkpoint of a new snapshot: nothing done yet.
pub(super) fn new_checkpoint(
    table: &str,
    origin: &Origin,
    segments: u32,
    config: &SnapshotConfig,
    started_at: chrono::DateTime<Utc>,
    shape: TableShape,
) -> Checkpoint {
    Checkpoint {
        format: CHECKPOINT_FORMAT.to_owned(),
        ddbsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        table: table.to_owned(),
        mode: origin.mode,
        source: origin.source.clone(),
        window: config
            .read
            .time
            .as_ref()
            .filter(|_| origin.mode == RunMode::Scan)
            .map(|_| WindowStats::default()),
        filter: origin.filter.clone(),
        segments,
        options: output_options(config),
        started_at,
        updated_at: started_at,
        runs: 1,
        positions: vec![Position::Start; segments as usize],
        files: Vec::new(),
        shape,
        totals: Totals::default(),
        shard: None,
        commit: None,
    }
}
