//! Split runs (see [`crate::shard`]): how a shard starts, continues and finishes its part, and
//! `ddbsnap commit`, which joins the shards' records into one checkpoint and commits it like a
//! run that was never split.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{
    Checkpoint, Position, create_checkpoint, read_checkpoint, write_checkpoint,
};
use crate::config::SnapshotConfig;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::{CHECKPOINT_FILE, MANIFEST_FILE, Target};

use super::commit::commit;
use super::commit_plan::CommitPlan;
use super::resume::{Origin, Started, committed, continue_from, resume_point};
use super::summary::Summary;
use crate::shard::{SHARDS_DIR, Shard};
use crate::sink::{PROBE_FILE, STAGING_DIR, is_shard_data_file};
use std::collections::HashSet;

/// Start `shard` of a split run in `target` (the run's folder, scoped to the shard): continue
/// its own checkpoint when an earlier attempt left one (a retried task, a restarted pod; a
/// finished shard's part is then empty and its record saved again), else claim the part with
/// a new one. Nothing at the folder is cleared: other shards are writing there.
pub(super) async fn start_shard(
    (target, shard): (&Target, Shard),
    table: &str,
    origin: &Origin,
    config: &SnapshotConfig,
    progress: &dyn Progress,
    fresh: impl FnOnce() -> Checkpoint,
) -> Result<Started> {
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(target, &owned).await? {
        return Ok(Started::Committed(Box::new(manifest)));
    }
    if let Some(version) = config
        .output
        .format
        .publisher()
        .committed_version(target)
        .await?
    {
        let table = target
            .split_parent()
            .map_or(target.url.clone(), |(t, _)| t.url);
        return Err(Error::AlreadyExists {
            url: target.url.clone(),
            what: format!(
                "was committed as version {version} of the Delta table {table}, so shard \
                 {shard} has nothing left to do; a new run needs a new --run-id"
            ),
        });
    }
    if owned.iter().any(|f| f.name == CHECKPOINT_FILE) {
        return Err(Error::AlreadyExists {
            url: target.url.clone(),
            what: format!(
                "is being committed ({CHECKPOINT_FILE} joins the shards' records), so shard \
                 {shard} has nothing left to do; run `ddbsnap commit` again if it stopped"
            ),
        });
    }
    if owned.iter().any(|f| f.name == shard.record_name()) {
        return match resume_point(target, table, origin, config).await? {
            // Finished already: nothing to read, the record is saved again as it was.
            Started::Running(checkpoint) if checkpoint.commit.is_some() => {
                Ok(Started::Running(checkpoint))
            }
            Started::Running(checkpoint) => Ok(Started::Running(Box::new(continue_from(
                *checkpoint,
                progress,
            )))),
            committed => Ok(committed),
        };
    }
    let foreign: Vec<&str> = owned
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| {
            // Another shard's write probe is the only other file a shard leaves, for a moment.
            !is_shard_data_file(name)
                && Shard::from_record_name(name).is_none()
                && *name != PROBE_FILE
        })
        .collect();
    if let Some(name) = foreign.first() {
        return Err(Error::AlreadyExists {
            url: target.url.clone(),
            what: format!(
                "holds '{name}' of a run that was not split into shards; give the shards an \
                 empty location"
            ),
        });
    }
    target.probe().await?;
    let checkpoint = fresh().for_shard(shard);
    create_checkpoint(target, &checkpoint).await?;
    Ok(Started::Running(Box::new(checkpoint)))
}

/// The end of a shard whose part is in closed files: save its record (the checkpoint, with
/// what the commit needs) and report what it wrote. Readers see nothing until the commit.
pub(super) async fn finish_shard(
    plan: CommitPlan,
    target: &Target,
    progress: &Arc<dyn Progress>,
    mut checkpoint: Checkpoint,
    started: Instant,
) -> Result<Summary> {
    let shard = checkpoint
        .shard
        .ok_or_else(|| Error::Internal("a shard's checkpoint without its shard".into()))?;
    checkpoint.commit = Some(plan.clone());
    checkpoint.updated_at = Utc::now();
    write_checkpoint(target, &checkpoint).await?;
    progress.event(&ProgressEvent::ShardFinished {
        url: target.url.clone(),
        shard,
    });
    let totals = &checkpoint.totals;
    Ok(Summary {
        url: target.url.clone(),
        table: plan.table.name.clone(),
        items: totals.items_written,
        items_scanned: totals.items_scanned,
        items_expired: totals.items_expired,
        files: checkpoint.files.len(),
        bytes: checkpoint.files.iter().map(|f| f.file.bytes).sum(),
        consumed_rcu: totals.consumed_rcu,
        pages: totals.pages,
        segments: checkpoint.segments,
        read_budget: plan.read_budget.share(shard.count),
        concurrency: plan.concurrency,
        throttled_requests: totals.throttled_requests,
        retried_requests: totals.retried_requests,
        files_rewritten: 0,
        runs: checkpoint.runs,
        already_committed: false,
        watermark: None,
        delta: None,
        changes: None,
        seconds: started.elapsed().as_secs_f64(),
        columns_not_found: Vec::new(),
        shard: Some(shard),
        already_applied: false,
        window_note: None,
    })
}

/// What `ddbsnap commit` publishes.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The split run's folder (`--to` of its shards), or the Delta table or dataset whose
    /// `run=` folder holds it.
    pub destination: crate::sink::Destination,
    /// The name of the `run=` folder under `destination` (`run=...`), when it holds several
    /// split runs.
    pub run: Option<String>,
    /// How many shards the run was split into.
    pub shards: u32,
    /// AWS access, for S3 destinations.
    pub aws: crate::aws::AwsOptions,
    /// S3 endpoint and region.
    pub s3: crate::sink::S3Options,
}

/// `ddbsnap commit`: once every shard of the split run has finished, join their records into
/// one checkpoint, re-encode files written with a narrower schema than the joined one, and
/// publish the run once (its manifest, or one Delta version). Refused, changing nothing, while
/// a shard has not finished. Run again after a failure, it finishes the same commit; after a
/// commit, it reports the committed run.
pub async fn commit_shards(
    request: &CommitRequest,
    progress: Arc<dyn Progress>,
) -> Result<Summary> {
    let started = Instant::now();
    let root =
        super::upkeep::open_location(&request.destination, &request.aws, &request.s3).await?;
    let target = split_run_folder(root, request.run.as_deref()).await?;
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(&target, &owned).await? {
        let leftover = |f: &&crate::sink::OwnedFile| {
            f.name.starts_with(SHARDS_DIR) || f.name.starts_with(STAGING_DIR)
        };
        for f in owned.iter().filter(leftover) {
            target.delete(&f.location).await?;
        }
        return Ok(Summary::of_manifest(&target, &manifest, true));
    }
    let mut checkpoint = match read_checkpoint(&target).await? {
        // An earlier commit joined the records and stopped before publishing.
        Some(joined) if joined.commit.is_some() && joined.shard.is_none() => joined,
        Some(_) => {
            return Err(Error::AlreadyExists {
                url: target.url.clone(),
                what: format!(
                    "holds a run that was not split into shards ({CHECKPOINT_FILE}); finish it \
                     with --resume"
                ),
            });
        }
        None => join(&target, &owned, request.shards).await?,
    };
    let plan = checkpoint
        .commit
        .clone()
        .ok_or_else(|| Error::Internal("a joined checkpoint without its commit".into()))?;
    // Files re-encoded by the commit wait where the shards' files do.
    let target = target.staging(plan.format.stages_files());
    let cancel = CancellationToken::new();
    commit(plan, &target, &progress, &cancel, &mut checkpoint, started).await
}

/// The folder of the split run at `root`: `root` itself when it holds shard records, else its
/// one `run=` folder that does (or `run`).
async fn split_run_folder(root: Target, run: Option<&str>) -> Result<Target> {
    if let Some(run) = run {
        return Ok(root.child(run));
    }
    if is_split(&root).await? || root.store.head(&root.path(MANIFEST_FILE)).await.is_ok() {
        return Ok(root);
    }
    let mut split = Vec::new();
    for run in root.runs().await? {
        let folder = root.child(&run.name);
        if !run.committed && is_split(&folder).await? {
            split.push(folder);
        }
    }
    match split.len() {
        1 => Ok(split.remove(0)),
        0 => Err(Error::NotReady {
            url: root.url.clone(),
            message: format!(
                "it holds no unfinished split run (no {SHARDS_DIR}/ records): its shards have \
                 not started, or it was committed already; run the shards with --to {} first",
                root.url
            ),
        }),
        _ => Err(Error::invalid(format!(
            "{} holds {} unfinished split runs ({}); choose one with --run",
            root.url,
            split.len(),
            split
                .iter()
                .map(|t| t.url.rsplit('/').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// True when `target` holds an unfinished split run: shards' records or staged files, or the
/// checkpoint a commit joined them into.
async fn is_split(target: &Target) -> Result<bool> {
    let listing = target
        .store
        .list_with_delimiter(Some(&target.path(SHARDS_DIR)))
        .await
        .map_err(|e| target.error("listing the shards' records", e))?;
    if !listing.objects.is_empty() {
        return Ok(true);
    }
    Ok(read_checkpoint(target)
        .await?
        .is_some_and(|c| c.commit.is_some() && c.shard.is_none()))
}

/// Read the records of the `count` shards in `target` and join them into the checkpoint of
/// the whole run, saved as its `_checkpoint.json` before the records are removed (a commit
/// stopped after this continues from it). Data files no record names (left by killed attempts)
/// are deleted.
async fn join(target: &Target, owned: &[crate::sink::OwnedFile], count: u32) -> Result<Checkpoint> {
    if count == 0 {
        return Err(Error::invalid("--shards must be at least 1"));
    }
    let other: Vec<Shard> = owned
        .iter()
        .filter_map(|f| Shard::from_record_name(&f.name))
        .filter(|s| s.count != count)
        .collect();
    if let Some(s) = other.first() {
        return Err(Error::invalid(format!(
            "{} holds records of a run split into {} shards (e.g. {}), not {count}; commit \
             with --shards {}",
            target.url,
            s.count,
            s.record_name(),
            s.count
        )));
    }
    let mut records = Vec::with_capacity(count as usize);
    let mut waiting = Vec::new();
    for index in 0..count {
        let shard = Shard::new(index, count)?;
        let scoped = target.clone().for_shard(Some(shard));
        match read_checkpoint(&scoped).await? {
            Some(record) if record.commit.is_some() => records.push(record),
            Some(record) => {
                let own = (0..record.segments as usize)
                    .filter(|&s| shard.owns(s))
                    .count();
                let done = record
                    .positions
                    .iter()
                    .enumerate()
                    .filter(|(s, p)| shard.owns(*s) && **p == Position::Done)
                    .count();
                waiting.push(format!(
                    "{index} (running or stopped, {done} of {own} parts done)"
                ));
            }
            None => waiting.push(format!("{index} (not started)")),
        }
    }
    if !waiting.is_empty() {
        return Err(Error::NotReady {
            url: target.url.clone(),
            message: format!(
                "{} of {count} shards have not finished: {}; run them (a shard run again \
                 continues its part), then commit again",
                waiting.len(),
                waiting.join(", ")
            ),
        });
    }
    let joined = joined_checkpoint(&target.url, records)?;
    let sizes: HashMap<&str, u64> = owned.iter().map(|f| (f.name.as_str(), f.size)).collect();
    for f in &joined.files {
        if sizes.get(f.file.path.as_str()) != Some(&f.file.bytes) {
            return Err(Error::Destination {
                url: target.url.clone(),
                message: format!(
                    "a shard's record lists {} ({} bytes) but it is missing or has another \
                     size; run that shard again from the start (delete its record)",
                    f.file.path, f.file.bytes
                ),
                source: None,
            });
        }
    }
    let written: HashSet<String> = joined.files.iter().map(|f| f.file.path.clone()).collect();
    create_checkpoint(target, &joined).await?;
    for f in owned {
        let record = Shard::from_record_name(&f.name).is_some();
        if record || (!written.contains(&f.name) && target.writes_data_file(&f.name)) {
            target.delete(&f.location).await?;
        }
    }
    Ok(joined)
}

/// The checkpoint of the whole run from its shards' finished `records` (in shard order): the
/// files of all, the totals summed, the schema states merged, every part done. The records
/// must be of the same run: table, source, filter, segments and options.
fn joined_checkpoint(url: &str, records: Vec<Checkpoint>) -> Result<Checkpoint> {
    let mut records = records.into_iter();
    let mut joined = records
        .next()
        .ok_or_else(|| Error::Internal("no shard records to join".into()))?;
    let mut plan = joined
        .commit
        .take()
        .ok_or_else(|| Error::Internal("an unfinished shard record".into()))?;
    for record in records {
        let same = record.table == joined.table
            && record.mode == joined.mode
            && record.source == joined.source
            && record.filter == joined.filter
            && record.segments == joined.segments
            && record.options == joined.options;
        if !same {
            return Err(Error::invalid(format!(
                "the shards' records at {url} are not of one run (shard {} read {} '{}' with \
                 {} segments and {}, shard {} {} '{}' with {} and {}); run every shard with \
                 the same options",
                joined.shard.map_or(0, |s| s.index),
                joined.mode,
                joined.source.as_deref().unwrap_or(&joined.table),
                joined.segments,
                joined.options.describe(),
                record.shard.map_or(0, |s| s.index),
                record.mode,
                record.source.as_deref().unwrap_or(&record.table),
                record.segments,
                record.options.describe(),
            )));
        }
        if let Some(theirs) = &record.commit {
            plan.concurrency += theirs.concurrency;
        }
        joined.files.extend(record.files);
        joined.shape.merge(&record.shape);
        joined.totals.add(&record.totals);
        if let (Some(window), Some(theirs)) = (joined.window.as_mut(), record.window.as_ref()) {
            window.merge(theirs);
        }
        joined.started_at = joined.started_at.min(record.started_at);
        joined.runs = joined.runs.max(record.runs);
    }
    joined.positions = vec![Position::Done; joined.segments as usize];
    joined.shard = None;
    joined.commit = Some(plan);
    joined.updated_at = Utc::now();
    Ok(joined)
}
