//! Wires source → convert → sink, checkpoints, and commits.
//!
//! ```text
//! scan task × concurrency ──page──> PageSink ──segment % lanes──> conversion lanes (see lanes)
//!   (each page's parse starts on a                                  each takes its pages in
//!    blocking thread as it arrives)                                  order: observe the shared
//!                                                                    shape, encode, its own
//!                                                                    rolling Parquet files
//!                                                                    file closed ─> _checkpoint.json
//! all segments done ──Msg::End──> lanes close their last files ──> re-encode early files if the
//! schema widened after them ──> write _manifest.json (the commit) ──> remove _checkpoint.json
//! ```
//!
//! Schema: the first [`SAMPLE_PAGES`] pages of a lane are held back and observed before its
//! first file is opened, so the first files already have the settled schema in most tables.
//! When a later item widens the schema (a new attribute, a number needing a wider type, a type conflict),
//! the open file is closed and a new one started; at the end, every file whose schema differs
//! from the final one is read back and re-encoded, so all files share one schema.
//!
//! Checkpoints (see [`crate::checkpoint`]): files close only between pages (on a schema
//! change, at the target size, or after `checkpoint_interval`), and each close is followed by a
//! checkpoint naming every closed file and, per segment, the LastEvaluatedKey of the last page
//! in them. `--resume` restores that state (positions, files, schema inference, totals) and
//! scans only what is left.
//!
//! Failure: an error or Ctrl-C stops the scan; pages already received are written, the open
//! file is closed and a checkpoint saved (unless the destination itself failed, in which case
//! the open upload is aborted and the previous checkpoint stands). No manifest is written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use object_store::ObjectStoreExt;
use parquet::file::metadata::KeyValue;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CheckpointFile, Position, Totals, create_checkpoint,
    read_checkpoint, write_checkpoint,
};
use crate::config::SnapshotConfig;
use crate::convert::{Columns, Item, NumberMode, Rows, TableShape, arrow_schema_with_keys};
use crate::error::{Error, Result};
use crate::filter::{TimeCheck, WindowStats};
use crate::format::TableFormat;
use crate::manifest::{MANIFEST_FORMAT, Manifest, ManifestSchema, OutputOptions, Watermark};
use crate::plan::{auto_segments, plan_scan};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::reader::{FileItems, read_manifest};
use crate::sink::writer::{RollingWriter, WriterOptions, file_path};
use crate::sink::{CHECKPOINT_FILE, DataFile, MANIFEST_FILE, Target, next_data_file_index};
use crate::source::export::{Export, ExportSummary};
use crate::source::scan::{Msg, Page, ScanJob, SegmentEnd};
use crate::table::{KeyAttribute, TableInfo};
use crate::throttle::{ReadBudget, Throttle};

mod admit;
mod commit;
mod lanes;
mod shards;
mod sources;

use commit::commit;
pub use commit::{CommitPlan, FileSizes};
pub use shards::{CommitRequest, commit_shards};

use lanes::{Conversion, LaneSetup};

use sources::convert_export_to;
pub use sources::{apply, convert_export};

/// Pages observed before the first file is opened (each page is at most 1 MB of items).
pub const SAMPLE_PAGES: usize = 4;
/// Rows per encoded batch when flushing held-back items.
const BATCH_ROWS: usize = 8192;

/// What a finished snapshot run reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

pub use crate::format::delta::{DeltaCommit, MergeStats};

impl Summary {
    /// The summary of the snapshot `manifest` describes; the run's own figures (concurrency,
    /// files rewritten, seconds) are left at zero for the caller to fill in.
    fn of_manifest(target: &Target, manifest: &Manifest, already_committed: bool) -> Self {
        Summary {
            url: target.url.clone(),
            table: manifest.table.name.clone(),
            items: manifest.items_written,
            items_scanned: manifest.items_scanned,
            items_expired: manifest.items_expired,
            files: manifest.files.len(),
            bytes: manifest.files.iter().map(|f| f.bytes).sum(),
            consumed_rcu: manifest.consumed_rcu,
            pages: manifest.pages,
            segments: manifest.segments,
            read_budget: manifest.read_budget.clone(),
            concurrency: 0,
            throttled_requests: manifest.throttled_requests,
            retried_requests: manifest.retried_requests,
            files_rewritten: 0,
            runs: manifest.runs,
            already_committed,
            watermark: manifest.watermark.clone(),
            delta: None,
            seconds: 0.0,
            columns_not_found: Vec::new(),
            shard: None,
            already_applied: false,
            window_note: None,
        }
    }

    /// The summary of a run that found its change set already applied to the table at `url`
    /// and wrote nothing; `note` says so.
    fn already_applied(url: &str, table: &TableInfo, note: String) -> Self {
        Summary {
            url: url.to_owned(),
            table: table.name.clone(),
            already_applied: true,
            window_note: Some(note),
            ..Summary::default()
        }
    }
}

/// Snapshot a table as configured: load AWS configuration, open the destination, scan, write,
/// commit.
pub async fn snapshot(config: &SnapshotConfig, progress: Arc<dyn Progress>) -> Result<Summary> {
    snapshot_until(config, progress, CancellationToken::new()).await
}

/// [`snapshot`], stopping cleanly when `cancel` fires before the commit: the scan stops, the
/// pages already received are written, the open file is closed and the checkpoint saved, no
/// manifest is written, and [`Error::Interrupted`] returned (`--resume` continues the run).
pub async fn snapshot_until(
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let started = (Instant::now(), Utc::now());
    let aws = AwsContext::load(&config.aws).await?;
    // The table first: a wrong name or region must not leave an empty destination behind.
    let table = TableInfo::describe(&aws, &config.table).await?;
    leaving_no_trace(&config.destination, async {
        let target = Target::open(&config.destination, Some(&aws.s3), &config.s3).await?;
        read_table(&aws, table, target, config, progress, cancel, started).await
    })
    .await
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

/// Read `table` into `target` as `config` says: through DynamoDB's export when it asks for
/// one, else a Scan. Every library entry point comes here.
async fn read_table(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started: (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    match config.export {
        Some(_) => export_runs(aws, table, target, config, progress, cancel, started).await,
        None => run(aws, table, target, config, progress, cancel, started).await,
    }
}

/// `snapshot --mode export`: one export and its conversion; for `--incremental --since last`
/// into a Delta table, one per window from where the table is current (split into windows
/// DynamoDB accepts), each merged in order as a new table version. The summary is the last
/// run's, with the items, files and bytes of all of them.
async fn export_runs(
    aws: &AwsContext,
    table: TableInfo,
    root: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started: (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    use crate::source::export::{ExportRequest, IncrementalRange};
    let request = config
        .export
        .as_ref()
        .ok_or_else(|| Error::Internal("an export run without an export".into()))?;
    let plan = if config.format == TableFormat::Delta && !config.resume {
        plan_exports(aws, &table, &root, config, request).await?
    } else {
        // One export (or the resumed one, whose export is in its checkpoint).
        ExportPlan::One
    };
    let windows = match plan {
        ExportPlan::One => {
            return export_run(aws, table, root, config, progress, cancel, started).await;
        }
        ExportPlan::AlreadyApplied(note) => {
            return Ok(Summary::already_applied(&root.url, &table, note));
        }
        ExportPlan::Refresh(gap) => {
            // A full export instead, which replaces the Delta table's rows.
            let full = SnapshotConfig {
                export: Some(ExportRequest {
                    incremental: None,
                    export_time: None,
                    ..request.clone()
                }),
                ..config.clone()
            };
            let mut summary =
                export_run(aws, table, root, &full, progress, cancel, started).await?;
            summary.window_note = crate::window::Admission::Refresh(gap).note();
            return Ok(summary);
        }
        ExportPlan::Windows(windows) => windows,
    };
    let mut total: Option<Summary> = None;
    for window in windows {
        let config = SnapshotConfig {
            export: Some(ExportRequest {
                incremental: Some(IncrementalRange::Window(window)),
                ..request.clone()
            }),
            ..config.clone()
        };
        let run_started = (Instant::now(), Utc::now());
        let done = export_run(
            aws,
            table.clone(),
            root.clone(),
            &config,
            Arc::clone(&progress),
            cancel.clone(),
            run_started,
        )
        .await?;
        total = Some(match total {
            None => done,
            Some(before) => Summary {
                items: before.items + done.items,
                items_scanned: before.items_scanned + done.items_scanned,
                files: before.files + done.files,
                bytes: before.bytes + done.bytes,
                ..done
            },
        });
    }
    let mut summary = total.ok_or_else(|| Error::Internal("no export window".into()))?;
    summary.seconds = started.0.elapsed().as_secs_f64();
    Ok(summary)
}

/// What `snapshot --mode export` into a Delta table does, decided before any export starts.
enum ExportPlan {
    /// One export, as asked.
    One,
    /// The window asked for is the one the table applied last: nothing to do.
    AlreadyApplied(String),
    /// A full export instead (`--on-gap refresh`), for this gap.
    Refresh(String),
    /// Incremental exports of these windows, in order (`--since last`).
    Windows(Vec<crate::source::export::IncrementalWindow>),
}

/// Admit an incremental export's window into the Delta table at `root`, or for `--since
/// last`, split the time from where the table is current into the windows to export. A gap
/// that point-in-time recovery cannot cover is decided by `--on-gap`.
async fn plan_exports(
    aws: &AwsContext,
    table: &TableInfo,
    root: &Target,
    config: &SnapshotConfig,
    request: &crate::source::export::ExportRequest,
) -> Result<ExportPlan> {
    use crate::source::export::{IncrementalRange, earliest_restorable, split_window};
    use crate::window::{ChangeWindow, Feed, OnGap, show};
    use admit::Admitted;
    let (until, old_images) = match &request.incremental {
        None => return Ok(ExportPlan::One),
        Some(IncrementalRange::Window(w)) => {
            let change = ChangeWindow {
                feed: Feed::Export,
                from: w.from,
                to: w.to,
                id: None,
            };
            return Ok(match admit::into_delta(root, &change, config).await? {
                Admitted::Go(_) => ExportPlan::One,
                Admitted::Done(note) => ExportPlan::AlreadyApplied(note),
                Admitted::Refresh(gap) => ExportPlan::Refresh(gap),
            });
        }
        Some(IncrementalRange::SinceLast { until, old_images }) => (*until, *old_images),
    };
    let mut from = crate::plan::delta_covered_until(root, &Feed::Export).await?;
    if let Some(earliest) = earliest_restorable(aws, table).await?
        && from < earliest
    {
        let gap = format!(
            "it holds every change up to {}, but point-in-time recovery of '{}' reaches back \
             to {} only, so no incremental export covers the changes in between",
            show(from),
            table.name,
            show(earliest)
        );
        match config.on_gap {
            OnGap::Fail => {
                return Err(Error::OutOfOrder {
                    url: root.url.clone(),
                    message: format!(
                        "{gap}; pass --on-gap refresh (a full export) or --on-gap force \
                         (continue from {})",
                        show(earliest)
                    ),
                });
            }
            OnGap::Refresh => return Ok(ExportPlan::Refresh(gap)),
            OnGap::Force => from = earliest,
        }
    }
    let windows = split_window(from, until.unwrap_or_else(Utc::now), old_images)?;
    Ok(ExportPlan::Windows(windows))
}

/// One export into `root` (its run folder when runs have folders) and its conversion.
async fn export_run(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started: (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    let request = config
        .export
        .as_ref()
        .ok_or_else(|| Error::Internal("an export run without an export".into()))?;
    let target = crate::plan::run_target(target, config, started.1).await?;
    let resumed = if config.resume {
        resume_export(&target, &table.name).await?
    } else {
        None
    };
    let (dir, config) = match resumed {
        Some(ExportResume::Committed(manifest)) => {
            return Ok(Summary::of_manifest(&target, &manifest, true));
        }
        Some(ExportResume::Converting(dir)) => (dir, config.clone()),
        None => {
            crate::plan::prepare_new_run(&target, config).await?;
            let done = crate::source::export::run_export(aws, &table, request, &*progress).await?;
            // Nothing converted yet: a fresh start (the ClientToken found the export again).
            (
                done.dir,
                SnapshotConfig {
                    resume: false,
                    ..config.clone()
                },
            )
        }
    };
    let export = Export::open(
        Target::open_source(
            &crate::sink::Destination::parse(&dir)?,
            Some(&aws.s3),
            &config.s3,
        )
        .await?,
    )
    .await?;
    let keys: Vec<String> = table.key_schema.iter().map(|k| k.name.clone()).collect();
    convert_export_to(
        Some(&aws.region),
        export,
        target,
        &keys,
        Some(table),
        &config,
        progress,
        cancel,
        started,
    )
    .await
}

/// What `snapshot --mode export --resume` found at the destination.
enum ExportResume {
    /// The snapshot is committed.
    Committed(Box<Manifest>),
    /// The export finished and its conversion stopped: continue converting this directory.
    Converting(String),
}

/// Where `snapshot --mode export --resume` picks up. `None` when the conversion has not started
/// (the run stopped while DynamoDB was exporting): run again, and the same ClientToken finds the
/// same export. Checks that the destination holds nothing else.
async fn resume_export(target: &Target, table: &str) -> Result<Option<ExportResume>> {
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(target, &owned).await? {
        return Ok(Some(ExportResume::Committed(Box::new(manifest))));
    }
    match read_checkpoint(target).await? {
        Some(checkpoint) if checkpoint.mode == "export" && checkpoint.table == table => {
            match checkpoint.source {
                Some(dir) => Ok(Some(ExportResume::Converting(dir))),
                None => Err(Error::invalid(format!(
                    "{CHECKPOINT_FILE} at {} does not say which export it converts; start over \
                     with --overwrite",
                    target.url
                ))),
            }
        }
        Some(checkpoint) => Err(Error::invalid(format!(
            "cannot resume the snapshot at {}: it is a {} snapshot of table '{}', not an export \
             of '{table}'; resume with the options of the first run, or start over with \
             --overwrite",
            target.url, checkpoint.mode, checkpoint.table
        ))),
        None if owned.is_empty() => Ok(None),
        None => Err(Error::invalid(format!(
            "{} has no {CHECKPOINT_FILE}, so there is nothing to resume; run without --resume \
             and with --overwrite to replace the files there",
            target.url
        ))),
    }
}

/// Snapshot into an already opened [`Target`] (any `object_store`), with a loaded AWS context.
pub async fn snapshot_to(
    aws: &AwsContext,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
) -> Result<Summary> {
    snapshot_to_until(aws, target, config, progress, CancellationToken::new()).await
}

/// [`snapshot_to`], stopping cleanly when `cancel` fires (see [`snapshot_until`]).
pub async fn snapshot_to_until(
    aws: &AwsContext,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let started = (Instant::now(), Utc::now());
    let table = TableInfo::describe(aws, &config.table).await?;
    read_table(aws, table, target, config, progress, cancel, started).await
}

/// How a run starts (or what `--resume` found at the destination).
enum Started {
    /// The run is committed already: nothing to do.
    Committed(Box<Manifest>),
    /// The checkpoint to run from (on `--resume`, the stray files of the unfinished run
    /// removed).
    Running(Box<Checkpoint>),
}

/// The run's checkpoint: on `--resume`, the unfinished run's (checked against this run's
/// options, and counted as one more run); otherwise `fresh()`, written as the run's claim on its
/// folder (from here on a failure leaves a run `--resume` can continue).
async fn start_or_resume(
    target: &Target,
    table: &str,
    origin: (&str, Option<&str>),
    config: &SnapshotConfig,
    filter: Option<&serde_json::Value>,
    progress: &dyn Progress,
    fresh: impl FnOnce() -> Checkpoint,
) -> Result<Started> {
    // A shard continues its own part by itself, --resume or not.
    if let Some(shard) = target.shard() {
        return shards::start_shard(
            target, shard, table, origin, config, filter, progress, fresh,
        )
        .await;
    }
    if config.resume {
        return Ok(
            match resume_point(target, table, origin, config, filter).await? {
                Started::Running(checkpoint) => {
                    Started::Running(Box::new(continue_from(*checkpoint, progress)))
                }
                committed => committed,
            },
        );
    }
    crate::plan::prepare_new_run(target, config).await?;
    let checkpoint = fresh();
    create_checkpoint(target, &checkpoint).await?;
    Ok(Started::Running(Box::new(checkpoint)))
}

/// Check that the destination holds an unfinished snapshot of this table made with these
/// options (or a committed one), and bring it back to its checkpoint: data files the checkpoint does not name (the
/// file that was open when the run stopped, staging files) are deleted, and every file it names
/// must be there with its recorded size.
async fn resume_point(
    target: &Target,
    table: &str,
    (mode, source): (&str, Option<&str>),
    config: &SnapshotConfig,
    filter: Option<&serde_json::Value>,
) -> Result<Started> {
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(target, &owned).await? {
        return Ok(Started::Committed(Box::new(manifest)));
    }
    let Some(checkpoint) = read_checkpoint(target).await? else {
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
    if checkpoint.mode != mode {
        return Err(mismatch(format!(
            "it was made in {} mode, not {mode}",
            checkpoint.mode
        )));
    }
    if checkpoint.source.as_deref() != source {
        return Err(mismatch(format!(
            "it was made from {} (this run reads {})",
            checkpoint.source.as_deref().unwrap_or("the table"),
            source.unwrap_or("the table")
        )));
    }
    if checkpoint.filter.as_ref() != filter {
        let show = |f: Option<&serde_json::Value>| f.map_or("none".to_owned(), |f| f.to_string());
        return Err(mismatch(format!(
            "it was made with index, columns and filters {} (this run asks for {})",
            show(checkpoint.filter.as_ref()),
            show(filter)
        )));
    }
    if let Some(s) = config.segments
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
    let sizes: HashMap<&str, u64> = owned.iter().map(|f| (f.name.as_str(), f.size)).collect();
    for f in &checkpoint.files {
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

/// The manifest of a committed snapshot among the destination's `owned` files, removing the
/// checkpoint that a run killed between its commit and the checkpoint's removal leaves.
async fn committed(target: &Target, owned: &[crate::sink::OwnedFile]) -> Result<Option<Manifest>> {
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
async fn discard(target: &Target) -> Result<()> {
    let checkpoint = target.checkpoint_name();
    for f in target.list_owned().await? {
        if f.name == checkpoint || target.writes_data_file(&f.name) {
            target.delete(&f.location).await?;
        }
    }
    Ok(())
}

/// A checkpoint `--resume` restored, counted as one more run and announced.
fn continue_from(mut checkpoint: Checkpoint, progress: &dyn Progress) -> Checkpoint {
    checkpoint.runs += 1;
    progress.event(&ProgressEvent::Resumed {
        mode: checkpoint.mode.clone(),
        segments_done: checkpoint.segments_done(),
        segments: checkpoint.segments,
        files: checkpoint.files.len(),
        items: checkpoint.totals.items_written,
        bytes: checkpoint.files.iter().map(|f| f.file.bytes).sum(),
    });
    checkpoint
}

fn output_options(config: &SnapshotConfig) -> OutputOptions {
    OutputOptions {
        compression: config.compression,
        zstd_level: (config.compression == crate::sink::Compression::Zstd)
            .then_some(config.zstd_level),
        numbers: config.numbers,
    }
}

/// Errors after the first checkpoint leave a resumable snapshot; say so, except where resuming
/// cannot help (the data itself, a bug) or the error already says it (Ctrl-C).
fn resumable(error: Error, target: &Target) -> Error {
    match error {
        Error::Interrupted { .. }
        | Error::Incomplete { .. }
        | Error::Unrepresentable { .. }
        | Error::CorruptExport { .. }
        | Error::Format { .. }
        | Error::InvalidArgument { .. }
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

async fn run(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    (started, started_at): (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    let plan = plan_scan(aws, &table, config, target, started_at).await?;
    let target = plan.target.clone();
    let spec_json = if plan.spec.is_full_table() {
        None
    } else {
        Some(
            serde_json::to_value(&plan.spec)
                .map_err(|e| Error::Internal(format!("serializing the scan: {e}")))?,
        )
    };
    let fresh = || {
        let segments = config
            .segments
            .unwrap_or_else(|| auto_segments(plan.size_bytes(&table)));
        let keys = plan
            .keys
            .iter()
            .map(|k| (k.name.as_str(), k.attribute_type));
        new_checkpoint(
            &table.name,
            ("scan", None),
            spec_json.clone(),
            segments,
            config,
            started_at,
            TableShape::with_keys(keys),
        )
    };
    let origin = ("scan", None);
    let checkpoint = match start_or_resume(
        &target,
        &table.name,
        origin,
        config,
        spec_json.as_ref(),
        &*progress,
        fresh,
    )
    .await?
    {
        Started::Committed(manifest) => return Ok(Summary::of_manifest(&target, &manifest, true)),
        Started::Running(checkpoint) => *checkpoint,
    };
    let segments = checkpoint.segments;
    let pending: Vec<(u32, Option<Item>)> = checkpoint
        .positions
        .iter()
        .enumerate()
        .filter_map(|(segment, position)| match position {
            Position::Start => Some((segment as u32, None)),
            Position::After { key } => Some((segment as u32, Some(key.0.clone()))),
            Position::Done => None,
        })
        .collect();

    let budget = ReadBudget::plan_for(
        &table,
        config.index.as_deref(),
        config.read_fraction,
        config.max_rcu,
    )
    .unwrap_or_else(|| ReadBudget::plan(&table, config.read_fraction, config.max_rcu));
    // A shard reads at its share of the table's budget.
    let own_budget = match target.shard() {
        Some(shard) => budget.share(shard.count),
        None => budget.clone(),
    };
    // An explicit --concurrency is honoured; otherwise the budget decides how many segments
    // are worth running at once.
    let concurrency = match config.concurrency {
        Some(c) => c,
        None => own_budget.concurrency(crate::config::DEFAULT_MAX_CONCURRENCY),
    }
    .min(pending.len() as u32)
    .max(1);
    let item_bytes = match (plan.size_bytes(&table), plan.item_count(&table)) {
        (Some(size), Some(count)) if size > 0 && count > 0 => Some(size as f64 / count as f64),
        _ => None,
    };
    let throttle = Arc::new(Throttle::new(
        own_budget.rcu_per_second,
        item_bytes,
        config.consistent_read,
    ));
    progress.event(&ProgressEvent::Started {
        mode: "scan".into(),
        table: table.name.clone(),
        segments,
        estimated_items: plan
            .item_count(&table)
            .filter(|&n| n > 0 && plan.spec.time.is_none() && plan.spec.raw.is_none())
            .map(|n| {
                // A shard reads about its share of the segments.
                let share = target.shard().map_or(1.0, |s| {
                    (0..segments as usize).filter(|&i| s.owns(i)).count() as f64
                        / f64::from(segments)
                });
                (n as f64 * share) as u64
            }),
        budget: own_budget,
        concurrency,
        shard: target.shard(),
    });

    let publish = CommitPlan {
        time: plan.spec.time.clone(),
        read_budget: budget.clone(),
        concurrency,
        ..CommitPlan::new(config, &aws.region, table.clone())
    };
    let writer_opts = publish.writer_options(&checkpoint.options)?;
    let time = plan.spec.time.as_ref().map(|t| t.check());
    // The run's start is the cutoff, the same after a resume.
    let expiry = plan
        .spec
        .skip_expired
        .as_deref()
        .map(|ttl| crate::filter::ExpiryCheck::new(ttl, checkpoint.started_at));
    let input_bytes = plan.size_bytes(&table).map(|b| b.max(0) as u64);
    let lanes = lanes::lane_count(config.threads, input_bytes, pending.len());
    let setup = LaneSetup {
        target: &target,
        writer: &writer_opts,
        progress: &progress,
        config,
        time,
        expiry,
        throttle: Some(Arc::clone(&throttle)),
        // The scan tasks report their own pages.
        report_pages: false,
    };
    let (tx, conversion) = Conversion::start(setup, checkpoint, lanes);

    let job = ScanJob {
        aws: aws.clone(),
        table: Arc::from(table.name.as_str()),
        index: config.index.as_deref().map(Arc::from),
        expressions: Arc::new(
            plan.spec
                .expressions(&plan.keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>())?,
        ),
        total_segments: segments,
        consistent_read: config.consistent_read,
        permits: Arc::new(Semaphore::new(concurrency as usize)),
        tx,
        progress: Arc::clone(&progress),
        throttle: Arc::clone(&throttle),
        retry_timeout: config.retry_timeout,
    };
    let tx = job.tx.clone();
    let scan_error = scan_segments(job, pending, &cancel, &target).await;
    let checkpoint = conversion.finish(tx, scan_error, &target).await?;
    let mut summary = finish(publish, &target, &progress, &cancel, checkpoint, started).await?;
    summary.window_note = plan.window_note;
    Ok(summary)
}

/// Scan the `pending` segments (from their start, or after their key) as `job` says, until
/// all are done; `Some` error when one failed, the scan stopped early, or `cancel` fired. The
/// tasks are gone when it returns (their senders dropped).
async fn scan_segments(
    job: ScanJob,
    pending: Vec<(u32, Option<Item>)>,
    cancel: &CancellationToken,
    target: &Target,
) -> Option<Error> {
    let mut tasks = JoinSet::new();
    for (segment, start_key) in pending {
        tasks.spawn(job.clone().run(segment, start_key));
    }
    drop(job);
    let mut scan_error = None;
    loop {
        let joined = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                scan_error = Some(Error::Interrupted { url: target.url.clone() });
                break;
            }
            joined = tasks.join_next() => match joined {
                Some(joined) => joined,
                None => break,
            },
        };
        match joined {
            Ok(Ok(SegmentEnd::Done)) => {}
            Ok(Ok(SegmentEnd::Stopped)) => break,
            Ok(Err(e)) => {
                scan_error = Some(e);
                break;
            }
            Err(e) => {
                scan_error = Some(Error::Internal(format!("scan task failed: {e}")));
                break;
            }
        }
    }
    let all_done = scan_error.is_none() && tasks.is_empty();
    tasks.abort_all();
    // Wait for the aborted tasks so their senders are gone and the converter sees the end.
    while tasks.join_next().await.is_some() {}
    scan_error.or_else(|| {
        (!all_done)
            .then(|| Error::Internal("the scan stopped before its end without an error".into()))
    })
}

/// The end of a run whose every item is in closed files: a shard saves its record (`ddbsnap
/// commit` publishes the shards together), a whole run commits.
async fn finish(
    plan: CommitPlan,
    target: &Target,
    progress: &Arc<dyn Progress>,
    cancel: &CancellationToken,
    mut checkpoint: Checkpoint,
    started: Instant,
) -> Result<Summary> {
    match target.shard() {
        Some(_) => shards::finish_shard(plan, target, progress, checkpoint, started).await,
        None => commit(plan, target, progress, cancel, &mut checkpoint, started).await,
    }
    .map_err(|e| resumable(e, target))
}

/// The checkpoint of a new snapshot: nothing done yet.
fn new_checkpoint(
    table: &str,
    (mode, source): (&str, Option<&str>),
    filter: Option<serde_json::Value>,
    segments: u32,
    config: &SnapshotConfig,
    started_at: chrono::DateTime<Utc>,
    shape: TableShape,
) -> Checkpoint {
    Checkpoint {
        format: CHECKPOINT_FORMAT.to_owned(),
        ddbsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        table: table.to_owned(),
        mode: mode.to_owned(),
        source: source.map(str::to_owned),
        window: config
            .time
            .as_ref()
            .filter(|_| mode == "scan")
            .map(|_| WindowStats::default()),
        filter,
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

/// The names of the table's key attributes.
fn key_columns(table: &TableInfo) -> Vec<String> {
    table.key_schema.iter().map(|k| k.name.clone()).collect()
}

/// The first free data file index after `files`.
fn next_file_index(files: &[CheckpointFile]) -> usize {
    next_data_file_index(files.iter().map(|f| f.file.path.as_str()))
}

fn file_metadata(table: &TableInfo) -> Result<Vec<KeyValue>> {
    let key_schema = serde_json::to_string(&table.key_schema)
        .map_err(|e| Error::Internal(format!("serializing the key schema: {e}")))?;
    Ok(vec![
        KeyValue::new("ddbsnap.table".to_owned(), table.name.clone()),
        KeyValue::new("ddbsnap.key_schema".to_owned(), key_schema),
        KeyValue::new(
            "ddbsnap.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}
