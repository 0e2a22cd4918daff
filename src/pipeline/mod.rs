//! The one path every run takes: [`Snapshot`] (and [`convert_export`], [`apply`],
//! [`commit_shards`]) hand a producer (`scan`: a Scan's segments; `files`: an export's data
//! files or the merge of `apply`) to the `driver`, which starts or resumes the run, runs the
//! producer into the conversion lanes and commits through the table format's publisher.
//!
//! ```text
//! producer tasks ──────────page──> PageSink ──segment % lanes──> conversion lanes (see lanes)
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
//! Checkpoints (`_checkpoint.json`): files close only between pages (on a schema
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
use crate::progress::{NoProgress, Progress};
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
mod stream;
mod summary;
mod upkeep;

pub use commit_plan::{CommitPlan, FileSizes};
pub use lanes::SAMPLE_PAGES;
use resume::{RunContext, leaving_no_trace};
pub use shards::{CommitRequest, commit_shards};
pub use sources::{apply, convert_export};
pub use stream::{DEFAULT_MAX_RECORDS, ShardRead, SyncOptions, SyncSummary, sync};
pub use summary::{DeltaCommit, MergeStats, Summary};
pub use upkeep::{TableRequest, optimize, vacuum};

/// One snapshot run, set up in the style of an operation builder and run by `.await`:
///
/// ```no_run
/// # async fn run(config: ddbsnap::SnapshotConfig) -> ddbsnap::Result<()> {
/// let cancel = ddbsnap::CancellationToken::new();
/// let summary = ddbsnap::Snapshot::new(config)
///     .progress(std::sync::Arc::new(ddbsnap::progress::BarProgress::new()))
///     .cancel(cancel.clone())
///     .await?;
/// # Ok(()) }
/// ```
///
/// It describes the table, then reads it as the configuration says (a Scan, or DynamoDB's
/// native export when [`SnapshotConfigBuilder::export`](crate::SnapshotConfigBuilder::export)
/// asked for one) into the destination, and commits. Without [`aws`](Self::aws) the AWS
/// configuration is loaded from the config's profile, region and endpoint; without
/// [`target`](Self::target) the config's destination is opened (and, when the run is refused
/// before writing, left as it was found).
#[must_use = "a Snapshot does nothing until it is awaited"]
pub struct Snapshot {
    config: SnapshotConfig,
    aws: Option<AwsContext>,
    target: Option<Target>,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
}

impl Snapshot {
    /// A run of `config`, reporting no progress and never cancelled.
    pub fn new(config: SnapshotConfig) -> Self {
        Snapshot {
            config,
            aws: None,
            target: None,
            progress: Arc::new(NoProgress),
            cancel: CancellationToken::new(),
        }
    }

    /// Use this AWS context (clients, region) instead of loading one from the config.
    pub fn aws(mut self, aws: AwsContext) -> Self {
        self.aws = Some(aws);
        self
    }

    /// Write into this already opened target (any `object_store`) instead of opening the
    /// config's destination.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Report progress here ([`crate::progress::BarProgress`], [`crate::progress::JsonProgress`],
    /// or your own [`Progress`]).
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Stop cleanly when `cancel` fires before the commit: reading stops, the pages already
    /// received are written, the open file is closed and the checkpoint saved, nothing is
    /// published, and [`crate::Error::Interrupted`] is returned (`--resume` continues the run).
    pub fn cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    async fn run(self) -> Result<Summary> {
        let Snapshot {
            config,
            aws,
            target,
            progress,
            cancel,
        } = self;
        let run = RunContext::new(&config, progress, cancel);
        let aws = match aws {
            Some(aws) => aws,
            None => AwsContext::load(&config.aws).await?,
        };
        // The table first: a wrong name or region must not leave an empty destination behind.
        let table = TableInfo::describe(&aws, &config.table).await?;
        match target {
            Some(target) => read_table(&aws, table, target, &run).await,
            None => {
                leaving_no_trace(&config.output.destination, async {
                    let target =
                        Target::open(&config.output.destination, Some(&aws.s3), &config.output.s3)
                            .await?;
                    read_table(&aws, table, target, &run).await
                })
                .await
            }
        }
    }
}

impl std::future::IntoFuture for Snapshot {
    type Output = Result<Summary>;
    type IntoFuture = futures::future::BoxFuture<'static, Result<Summary>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
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
