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

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::config::SnapshotConfig;
use crate::error::Result;
use crate::progress::Progress;
use crate::sink::Target;
use crate::table::TableInfo;

mod admit;
mod commit;
mod commit_plan;
mod driver;
mod export;
mod files;
mod lanes;
mod resume;
mod scan;
mod shards;
mod sources;
mod summary;

pub use commit_plan::{CommitPlan, FileSizes};
pub use lanes::SAMPLE_PAGES;
use resume::{RunContext, leaving_no_trace};
pub use shards::{CommitRequest, commit_shards};
pub use sources::{apply, convert_export};
pub use summary::{DeltaCommit, MergeStats, Summary};

/// Snapshot a table as configured: load AWS configuration, open the destination, scan, write,
/// commit.
pub async fn snapshot(config: &SnapshotConfig, progress: Arc<dyn Progress>) -> Result<Summary> {
    snapshot_until(config, progress, CancellationToken::new()).await
}

/// [`snapshot`], stopping cleanly when `cancel` fires before the commit: the scan stops, the
/// pages already received are written, the open file is closed and the checkpoint saved, no
/// manifest is written, and [`crate::Error::Interrupted`] returned (`--resume` continues the
/// run).
pub async fn snapshot_until(
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let run = RunContext::new(config, progress, cancel);
    let aws = AwsContext::load(&config.aws).await?;
    // The table first: a wrong name or region must not leave an empty destination behind.
    let table = TableInfo::describe(&aws, &config.table).await?;
    leaving_no_trace(&config.destination, async {
        let target = Target::open(&config.destination, Some(&aws.s3), &config.s3).await?;
        read_table(&aws, table, target, &run).await
    })
    .await
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
    let run = RunContext::new(config, progress, cancel);
    let table = TableInfo::describe(aws, &config.table).await?;
    read_table(aws, table, target, &run).await
}

/// Read `table` into `target` as the run's options say: through DynamoDB's export when they
/// ask for one, else a Scan. Every library entry point comes here.
async fn read_table(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    run: &RunContext<'_>,
) -> Result<Summary> {
    match run.config.export {
        Some(_) => export::export_runs(aws, table, target, run).await,
        None => scan::scan(aws, table, target, run).await,
    }
}
