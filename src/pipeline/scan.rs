//! The Scan producer: the table's segments read by network tasks within the read budget
//! (see [`crate::source::scan`]), each continued after its checkpointed LastEvaluatedKey.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::checkpoint::{Checkpoint, Position};
use crate::convert::{Item, TableShape};
use crate::error::{Error, Result};
use crate::mode::RunMode;
use crate::plan::{ScanPlan, auto_segments, plan_scan};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::Target;
use crate::source::scan::{PageSink, ScanJob, SegmentEnd};
use crate::table::TableInfo;
use crate::throttle::{ReadBudget, Throttle};

use super::commit_plan::CommitPlan;
use super::driver::{Producer, Reading, drive};
use super::resume::{Origin, RunContext};
use super::summary::Summary;

/// Snapshot `table` into `target` with a segmented parallel Scan.
pub(super) async fn scan(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let config = run.config;
    let plan = plan_scan(aws, &table, config, target, run.started.1).await?;
    let target = plan.target.clone();
    let budget = ReadBudget::plan_for(
        &table,
        config.read.index.as_deref(),
        config.read.read_fraction,
        config.read.max_rcu,
    )
    .unwrap_or_else(|| ReadBudget::plan(&table, config.read.read_fraction, config.read.max_rcu));
    if let Some(reason) = &plan.refresh {
        run.progress.event(&ProgressEvent::FullRefresh {
            reason: reason.clone(),
        });
    }
    let publish = CommitPlan {
        time: plan.spec.time.clone(),
        refreshed_at: plan.refreshed_at,
        read_budget: budget.clone(),
        ..CommitPlan::new(config, &aws.region, table.clone())
    };
    let window_note = plan.window_note.clone();
    let filter = if plan.spec.is_full_table() {
        None
    } else {
        Some(
            serde_json::to_value(&plan.spec)
                .map_err(|e| Error::Internal(format!("serializing the scan: {e}")))?,
        )
    };
    let producer = Scan {
        aws: aws.clone(),
        table,
        plan,
        filter,
        budget,
        read: config.read.clone(),
        progress: Arc::clone(&run.progress),
        job: None,
    };
    let mut summary = drive(producer, publish, target, run).await?;
    summary.window_note = window_note;
    Ok(summary)
}

/// A Scan of the table as its plan says.
struct Scan {
    aws: AwsContext,
    table: TableInfo,
    plan: ScanPlan,
    /// The plan's scan, as the checkpoint records it (`None`: the whole table).
    filter: Option<serde_json::Value>,
    /// The read budget of the whole run (all shards together).
    budget: ReadBudget,
    /// What the run reads and how fast.
    read: crate::config::ReadOptions,
    progress: Arc<dyn Progress>,
    /// The segments left and how to scan them, once prepared.
    job: Option<Prepared>,
}

/// The segments left, and what their scan tasks share but the channel.
struct Prepared {
    pending: Vec<(u32, Option<Item>)>,
    expressions: Arc<crate::filter::Expressions>,
    total_segments: u32,
    permits: Arc<Semaphore>,
    throttle: Arc<Throttle>,
}

impl Producer for Scan {
    fn origin(&self) -> Origin {
        Origin {
            mode: RunMode::Scan,
            source: None,
            filter: self.filter.clone(),
        }
    }

    fn parts(&self) -> (u32, TableShape) {
        let segments = self
            .read
            .segments
            .unwrap_or_else(|| auto_segments(self.plan.size_bytes(&self.table)));
        let keys = self
            .plan
            .keys
            .iter()
            .map(|k| (k.name.as_str(), k.attribute_type));
        (segments, TableShape::with_keys(keys))
    }

    fn fixed_parts(&self) -> bool {
        false
    }

    fn input_bytes(&self) -> Option<u64> {
        self.plan.size_bytes(&self.table).map(|b| b.max(0) as u64)
    }

    fn prepare(
        &mut self,
        checkpoint: &Checkpoint,
        _lanes: usize,
        target: &Target,
    ) -> Result<Reading> {
        let read = &self.read;
        let pending = pending_segments(checkpoint);
        // A shard reads at its share of the table's budget.
        let own_budget = match target.shard() {
            Some(shard) => self.budget.share(shard.count),
            None => self.budget.clone(),
        };
        // An explicit --concurrency is honoured; otherwise the budget decides how many
        // segments are worth running at once.
        let concurrency = read
            .concurrency
            .unwrap_or_else(|| own_budget.concurrency(crate::config::DEFAULT_MAX_CONCURRENCY))
            .min(pending.len() as u32)
            .max(1);
        let (table, plan) = (&self.table, &self.plan);
        let item_bytes = match (plan.size_bytes(table), plan.item_count(table)) {
            (Some(size), Some(count)) if size > 0 && count > 0 => Some(size as f64 / count as f64),
            _ => None,
        };
        let throttle = Arc::new(Throttle::new(
            own_budget.rcu_per_second,
            item_bytes,
            read.consistent_read,
        ));
        let keys: Vec<String> = plan.keys.iter().map(|k| k.name.clone()).collect();
        let parts = Prepared {
            pending,
            expressions: Arc::new(plan.spec.expressions(&keys)?),
            total_segments: checkpoint.segments,
            permits: Arc::new(Semaphore::new(concurrency as usize)),
            throttle: Arc::clone(&throttle),
        };
        self.job = Some(parts);
        // The run's start is the cutoff, the same after a resume.
        let expiry = plan
            .spec
            .skip_expired
            .as_deref()
            .map(|ttl| crate::filter::ExpiryCheck::new(ttl, checkpoint.started_at));
        Ok(Reading {
            concurrency,
            estimated_items: self.estimated_items(checkpoint.segments, target),
            budget: own_budget,
            time: plan.spec.time.as_ref().map(|t| t.check()),
            expiry,
            throttle: Some(throttle),
            // The scan tasks report their own pages.
            report_pages: false,
        })
    }

    async fn read(self, tx: PageSink, cancel: CancellationToken, url: String) -> Option<Error> {
        let Some(parts) = self.job else {
            return Some(Error::Internal("a scan read before it was prepared".into()));
        };
        let progress = self.progress;
        let job = ScanJob {
            aws: self.aws,
            table: Arc::from(self.table.name.as_str()),
            index: self.read.index.as_deref().map(Arc::from),
            expressions: parts.expressions,
            total_segments: parts.total_segments,
            consistent_read: self.read.consistent_read,
            permits: parts.permits,
            tx,
            progress,
            throttle: parts.throttle,
            retry_timeout: self.read.retry_timeout,
        };
        scan_segments(job, parts.pending, &cancel, &url).await
    }
}

impl Scan {
    /// The items this run will read, when DynamoDB's count says and the scan reads every item
    /// (a shard: about its share of the segments).
    fn estimated_items(&self, segments: u32, target: &Target) -> Option<u64> {
        let spec = &self.plan.spec;
        let count = self.plan.item_count(&self.table)?;
        if count <= 0 || spec.time.is_some() || spec.raw.is_some() {
            return None;
        }
        let share = target.shard().map_or(1.0, |s| {
            (0..segments as usize).filter(|&i| s.owns(i)).count() as f64 / f64::from(segments)
        });
        Some((count as f64 * share) as u64)
    }
}

/// The segments a checkpoint leaves, each with the key to continue after.
fn pending_segments(checkpoint: &Checkpoint) -> Vec<(u32, Option<Item>)> {
    checkpoint
        .positions
        .iter()
        .enumerate()
        .filter_map(|(segment, position)| match position {
            Position::After { key } => Some((segment as u32, Some(key.0.clone()))),
            Position::Done => None,
            Position::Start | Position::Lines { .. } | Position::Stream { .. } => {
                Some((segment as u32, None))
            }
        })
        .collect()
}

/// Scan the `pending` segments (from their start, or after their key) as `job` says, until
/// all are done; `Some` error when one failed, the scan stopped early, or `cancel` fired. The
/// tasks are gone when it returns (their senders dropped).
async fn scan_segments(
    job: ScanJob,
    pending: Vec<(u32, Option<Item>)>,
    cancel: &CancellationToken,
    url: &str,
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
                scan_error = Some(Error::Interrupted { url: url.to_owned() });
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
