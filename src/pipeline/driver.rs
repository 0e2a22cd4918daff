//! The one driver every run goes through: a [`Producer`] (a Scan, an export's data files, the
//! merge of `apply`; DynamoDB Streams next) reads its parts into the conversion lanes, and the
//! finished run is committed (or, for a shard, recorded for `ddbsnap commit`).
//!
//! ```text
//! start_or_resume ─> checkpoint ─> Producer::prepare ─> lanes ─> Producer::read ─> pages ─┐
//!   (new, --resume, a shard)      (what is left)                                           │
//!                    finish: commit (manifest | Delta version) or the shard's record <─────┘
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, create_checkpoint};
use crate::convert::TableShape;
use crate::error::{Error, Result};
use crate::filter::{ExpiryCheck, TimeCheck};
use crate::progress::ProgressEvent;
use crate::sink::{CHECKPOINT_FILE, Target};
use crate::source::scan::PageSink;
use crate::throttle::{ReadBudget, Throttle};

use super::commit::commit;
use super::commit_plan::CommitPlan;
use super::lanes::{self, Conversion, LaneSetup};
use super::resume::{
    Origin, RunContext, Started, continue_from, new_checkpoint, resumable, resume_point,
};
use super::shards;
use super::summary::Summary;

/// A source of item pages for the conversion lanes, split into parts (Scan segments, an
/// export's data files, the input of `apply`), each resumed from the
/// [`Position`](crate::checkpoint::Position) the checkpoint keeps for it. A page says where its
/// part stands after it; the lanes keep that position once the page's items are in a closed
/// file.
pub(super) trait Producer: Send {
    /// Where the items come from, as the checkpoint records it.
    fn origin(&self) -> Origin;

    /// How many parts a new run has, and the schema its first columns start from.
    fn parts(&self) -> (u32, TableShape);

    /// Whether the source fixes the number of parts (a resumed checkpoint must have as many),
    /// rather than the run choosing it (a Scan's segments, kept by the checkpoint).
    fn fixed_parts(&self) -> bool;

    /// The input's size in bytes, when known: how many lanes are worth running.
    fn input_bytes(&self) -> Option<u64>;

    /// Get ready to read what `checkpoint` leaves, over `lanes` lanes: how the run reads.
    fn prepare(
        &mut self,
        checkpoint: &Checkpoint,
        lanes: usize,
        target: &Target,
    ) -> Result<Reading>;

    /// Read every part left into `tx` until all are done (`None`), or one fails or `cancel`
    /// fires (`Some` error, [`Error::Interrupted`] for `cancel`). Everything sending to the
    /// lanes has stopped when it returns.
    fn read(
        self,
        tx: PageSink,
        cancel: tokio_util::sync::CancellationToken,
        url: String,
    ) -> impl Future<Output = Option<Error>> + Send;
}

/// How a producer reads, as it tells the lanes and the progress.
pub(super) struct Reading {
    /// Parts read at once.
    pub(super) concurrency: u32,
    /// The read budget announced (none when the table is not read).
    pub(super) budget: ReadBudget,
    /// Items this run will read, when known.
    pub(super) estimated_items: Option<u64>,
    /// The exact timestamp window of an incremental pull.
    pub(super) time: Option<TimeCheck>,
    /// `--skip-expired`: which items have expired.
    pub(super) expiry: Option<ExpiryCheck>,
    /// The Scan's throttle, whose counts go into the checkpoint.
    pub(super) throttle: Option<Arc<Throttle>>,
    /// The lanes report each page (producers that do not report their own).
    pub(super) report_pages: bool,
}

/// Run `producer` into `target` and publish the run as `publish` says: start (or resume),
/// read through the lanes, then commit.
pub(super) async fn drive<P: Producer>(
    mut producer: P,
    mut publish: CommitPlan,
    target: Target,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let origin = producer.origin();
    let (parts, shape) = producer.parts();
    let table = publish.table.name.clone();
    let fresh = || {
        let started_at = run.started.1;
        new_checkpoint(&table, &origin, parts, run.config, started_at, shape)
    };
    let checkpoint = match start_or_resume(&target, &table, &origin, run, fresh).await? {
        Started::Committed(manifest) => return Ok(Summary::of_manifest(&target, &manifest, true)),
        Started::Running(checkpoint) => *checkpoint,
    };
    if producer.fixed_parts() && checkpoint.segments != parts {
        return Err(Error::Destination {
            url: target.url.clone(),
            message: format!(
                "{CHECKPOINT_FILE} has positions for {} sources but {} has {parts}; start over \
                 with --overwrite",
                checkpoint.segments,
                origin.source.as_deref().unwrap_or("the table")
            ),
            source: None,
        });
    }
    // From here on a failure leaves a run `--resume` can continue.
    let left = checkpoint.segments as usize - checkpoint.segments_done();
    let lane_count = lanes::lane_count(run.config.output.threads, producer.input_bytes(), left);
    let reading = producer.prepare(&checkpoint, lane_count, &target)?;
    run.progress.event(&ProgressEvent::Started {
        mode: origin.mode,
        table: table.clone(),
        segments: checkpoint.segments,
        estimated_items: reading.estimated_items,
        budget: reading.budget,
        concurrency: reading.concurrency,
        shard: target.shard(),
    });
    publish.concurrency = reading.concurrency;
    let writer = publish.writer_options(&checkpoint.options)?;
    let setup = LaneSetup {
        target: &target,
        writer: &writer,
        progress: &run.progress,
        config: run.config,
        time: reading.time,
        expiry: reading.expiry,
        throttle: reading.throttle,
        report_pages: reading.report_pages,
    };
    let (tx, conversion) = Conversion::start(setup, checkpoint, lane_count);
    let error = producer
        .read(tx.clone(), run.cancel.clone(), target.url.clone())
        .await;
    let checkpoint = conversion.finish(tx, error, &target).await?;
    finish(publish, &target, run, checkpoint).await
}

/// The run's checkpoint: on `--resume`, the unfinished run's (checked against this run's
/// options, and counted as one more run); otherwise `fresh()`, written as the run's claim on its
/// folder (from here on a failure leaves a run `--resume` can continue).
async fn start_or_resume(
    target: &Target,
    table: &str,
    origin: &Origin,
    run: &RunContext<'_>,
    fresh: impl FnOnce() -> Checkpoint,
) -> Result<Started> {
    let (config, progress) = (run.config, &*run.progress);
    // A shard continues its own part by itself, --resume or not.
    if let Some(shard) = target.shard() {
        let part = (target, shard);
        return shards::start_shard(part, table, origin, config, progress, fresh).await;
    }
    if config.run.resume {
        return Ok(match resume_point(target, table, origin, config).await? {
            Started::Running(checkpoint) => {
                Started::Running(Box::new(continue_from(*checkpoint, progress)))
            }
            committed => committed,
        });
    }
    crate::plan::prepare_new_run(target, config).await?;
    let checkpoint = fresh();
    create_checkpoint(target, &checkpoint).await?;
    Ok(Started::Running(Box::new(checkpoint)))
}

/// The end of a run whose every item is in closed files: a shard saves its record (`ddbsnap
/// commit` publishes the shards together), a whole run commits.
async fn finish(
    plan: CommitPlan,
    target: &Target,
    run: &RunContext<'_>,
    mut checkpoint: Checkpoint,
) -> Result<Summary> {
    let (progress, started) = (&run.progress, run.started.0);
    match target.shard() {
        Some(_) => shards::finish_shard(plan, target, progress, checkpoint, started).await,
        None => {
            commit(
                plan,
                target,
                progress,
                &run.cancel,
                &mut checkpoint,
                started,
            )
            .await
        }
    }
    .map_err(|e| resumable(e, target))
}
