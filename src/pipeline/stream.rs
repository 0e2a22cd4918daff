//! `sync`: a Delta table kept current from the table's DynamoDB stream, with no read capacity
//! spent after the first load.
//!
//! ```text
//! no table (or --refresh) ─> list the stream's shards ─> full load (Scan, or an export)
//!                            committed with every shard "from its start" as the table's
//!                            stream position
//! the table's position ─> read each shard after it (lineage order) ─> change-log rows ─> MERGE
//!                         commit with the new positions (a run of at most --max-records
//!                         records; a backlog takes several)
//! ```
//!
//! The hand-off loses and duplicates nothing: the shards are listed before the load starts and
//! read from their start after it, so every change made during the load is read afterwards,
//! and per key the latest change in stream order wins (a change the load already saw is applied
//! again, to the same image). Each MERGE commits its positions with its data (the record in the
//! commit, see [`crate::format::delta`]), so a crash before a commit reads its records again
//! and one after it never applies them twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::checkpoint::Position;
use crate::config::SnapshotConfig;
use crate::error::{Error, Result};
use crate::format::TableFormat;
use crate::mode::RunMode;
use crate::progress::Progress;
use crate::sink::Target;
use crate::source::scan::PageSink;
use crate::source::stream::read::{StreamRead, StreamStats};
use crate::source::stream::{self, StreamInfo, StreamState};
use crate::table::TableInfo;
use crate::window::OnGap;

use super::commit_plan::CommitPlan;
use super::driver::drive;
use super::files::{Files, Reader};
use super::resume::{Origin, RunContext};
use super::summary::Summary;

/// How a sync runs, beyond the options every run has.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Load the table in full again, whatever the Delta table holds.
    pub refresh: bool,
    /// Deletes made by Time to Live keep their rows.
    pub keep_expired: bool,
    /// Give the table a stream (NEW_AND_OLD_IMAGES) when it has none.
    pub enable_stream: bool,
    /// Stream records one commit takes at most; a backlog is applied in several commits.
    pub max_records: u64,
    /// Keep running, reading and committing at this interval, until stopped.
    pub follow: Option<std::time::Duration>,
    /// Also append every record read, as a row, to the Delta table at this URL (a table of
    /// changes; see docs/streams.md).
    pub changes: Option<String>,
    /// Load the table through this export (DynamoDB's Export to S3) instead of a Scan.
    pub bootstrap: Option<crate::source::export::ExportRequest>,
}

/// Default [`SyncOptions::max_records`].
pub const DEFAULT_MAX_RECORDS: u64 = 1_000_000;

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    /// The Delta table.
    pub url: String,
    /// The DynamoDB table.
    pub table: String,
    /// The stream read (its ARN).
    pub stream: String,
    /// The full load this sync made first, when the table had to be loaded.
    pub bootstrap: Option<Summary>,
    /// Each commit of stream records, in order.
    pub commits: Vec<Summary>,
    /// Stream records read.
    pub records: u64,
    /// Deletes by Time to Live among them.
    pub expired_deletes: u64,
    /// GetRecords calls made.
    pub get_records_calls: u64,
    /// Seconds from the approximate creation of the newest record read to its commit.
    pub lag_seconds: Option<f64>,
    /// How far behind the table was: the age of the oldest record read when the sync started
    /// reading (none when there was nothing new).
    pub behind_seconds: Option<f64>,
    /// The Delta table's version after the sync.
    pub version: Option<u64>,
    /// Per shard read: records read, and how old its newest record was at its commit.
    pub shards: Vec<ShardRead>,
    /// The table of changes (`--changes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
    /// Its version after the sync's last append (none when the sync appended nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes_version: Option<u64>,
}

/// What a sync read of one shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardRead {
    /// The shard id.
    pub shard: String,
    /// Records read from it.
    pub records: u64,
    /// Seconds from the approximate creation of its newest record read to that record's
    /// commit (none when it had no record).
    pub lag_seconds: Option<f64>,
}

/// Keep the Delta table at `config`'s destination current from the DynamoDB stream of
/// `config`'s table (see the module documentation). `cancel` interrupts (nothing more is
/// committed; the next sync finishes the run); `stop` ends the sync cleanly: a stream run stops
/// reading and commits what it read, a follow loop ends (a full load is interrupted, as it
/// cannot commit half a table).
pub async fn sync(
    config: &SnapshotConfig,
    options: SyncOptions,
    progress: Arc<dyn Progress>,
    (cancel, stop): (CancellationToken, CancellationToken),
) -> Result<SyncSummary> {
    // A sync refused before it wrote anything leaves no folder behind.
    let work = synced(config, options, progress, (cancel, stop));
    super::resume::leaving_no_trace(&config.output.destination, work)
        .await
        .map_err(|e| match e {
            // A killed or failed sync is finished by the next one, whatever it was doing.
            Error::Incomplete {
                error,
                url,
                checkpoint,
                ..
            } => Error::Incomplete {
                error,
                url,
                checkpoint,
                how: "run the same sync again: it finishes this run first",
            },
            Error::Interrupted { .. } => Error::SyncInterrupted {
                url: config.output.destination.display(),
            },
            other => other,
        })
}

async fn synced(
    config: &SnapshotConfig,
    options: SyncOptions,
    progress: Arc<dyn Progress>,
    (cancel, stop): (CancellationToken, CancellationToken),
) -> Result<SyncSummary> {
    let mut config = config.clone();
    config.output.format = TableFormat::Delta;
    let aws = AwsContext::load(&config.aws).await?;
    let table = TableInfo::describe(&aws, &config.table).await?;
    let stream = match stream::latest(&aws, &table.name).await {
        Err(Error::InvalidArgument { .. }) if options.enable_stream => {
            stream::enable(&aws, &table.name).await?
        }
        found => found?,
    };
    let root = Target::open(&config.output.destination, Some(&aws.s3), &config.output.s3).await?;
    let changes = match &options.changes {
        Some(url) => Some(changes_table(url, &root, &aws, &config).await?),
        None => None,
    };
    let mut summary = SyncSummary::new(&root, &table, &stream, changes.as_ref());
    // A sync killed before its commit left its run: finish that run first (a load is resumed
    // from its checkpoint, a stream run after the records its closed files hold).
    let leftover = unfinished(&root).await?;
    let held = match leftover {
        Some((RunMode::Scan | RunMode::Export, _)) => None,
        _ => held_position(&root, &table, &stream, &config, &options).await?,
    };
    let load = Load {
        aws: &aws,
        table: &table,
        stream: &stream,
        root: &root,
        resumed_from: leftover.map(|(_, started)| started),
        export: options.bootstrap.as_ref(),
    };
    // A load cannot commit half a table: either token interrupts it.
    let (load_cancel, _watching) = either(&cancel, &stop);
    let from = match held {
        Some(from) => from,
        None => {
            load.load_into(&mut summary, &config, (&progress, &load_cancel))
                .await?
        }
    };
    let reading = Reading {
        aws: &aws,
        table: &table,
        stream: &stream,
        root: &root,
        options: &options,
        stop: &stop,
        changes: changes.as_ref(),
    };
    if let Some(changes) = &changes {
        changes_not_behind(changes, &from, &table.name, config.run.on_gap).await?;
    }
    let resume = matches!(leftover, Some((RunMode::Stream, _)));
    let read = reading
        .merge_all(from, resume, &config, (&progress, &cancel), &mut summary)
        .await;
    // A gap: --on-gap says what to do. The run that found it (when it had started writing)
    // can never be committed: it goes first.
    if matches!(read, Err(Error::StreamGap { .. })) && config.run.on_gap != OnGap::Fail {
        discard_unfinished_stream_run(&root).await?;
    }
    let from = match (read, config.run.on_gap) {
        (Err(Error::StreamGap { .. }), OnGap::Refresh) if summary.bootstrap.is_none() => {
            let load = Load {
                resumed_from: None,
                ..load
            };
            load.load_into(&mut summary, &config, (&progress, &load_cancel))
                .await?
        }
        (Err(Error::StreamGap { .. }), OnGap::Force) => {
            let shards = stream::shards(&aws, &stream.arn, &table.name).await?;
            stream::from_the_start(&stream.arn, &shards, chrono::Utc::now())
        }
        (Err(e), _) => return Err(e),
        (Ok(()), _) => {
            reading
                .follow(&config, (&progress, &cancel), &mut summary)
                .await?;
            return Ok(summary);
        }
    };
    reading
        .merge_all(from, false, &config, (&progress, &cancel), &mut summary)
        .await?;
    reading
        .follow(&config, (&progress, &cancel), &mut summary)
        .await?;
    Ok(summary)
}

/// A token that fires when `cancel` or `stop` does; dropping the guard ends the watch.
fn either(
    cancel: &CancellationToken,
    stop: &CancellationToken,
) -> (CancellationToken, tokio_util::sync::DropGuard) {
    let token = cancel.child_token();
    let (watch, stop) = (token.clone(), stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => watch.cancel(),
            _ = watch.cancelled() => {}
        }
    });
    let guard = token.clone().drop_guard();
    (token, guard)
}

/// Reading the stream into the Delta table, commit by commit.
struct Reading<'a> {
    aws: &'a AwsContext,
    table: &'a TableInfo,
    stream: &'a StreamInfo,
    root: &'a Target,
    options: &'a SyncOptions,
    /// Ends the sync cleanly (see [`sync`]).
    stop: &'a CancellationToken,
    /// The table of changes, with `--changes`.
    changes: Option<&'a Target>,
}

impl Reading<'_> {
    /// With `--follow`: read and commit every interval until `stop`, from where the table's
    /// last commit left the stream.
    async fn follow(
        &self,
        config: &SnapshotConfig,
        (progress, cancel): (&Arc<dyn Progress>, &CancellationToken),
        summary: &mut SyncSummary,
    ) -> Result<()> {
        let Some(every) = self.options.follow else {
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
            let from = recorded_position(self.root, self.stream).await?;
            self.merge_all(from, false, config, (progress, cancel), summary)
                .await?;
        }
    }

    /// Merge every record after `from` into the table, in runs of at most `max_records`
    /// records, each its own commit; the first run resumes the unfinished one when `resume`.
    async fn merge_all(
        &self,
        mut from: StreamState,
        mut resume: bool,
        config: &SnapshotConfig,
        (progress, cancel): (&Arc<dyn Progress>, &CancellationToken),
        summary: &mut SyncSummary,
    ) -> Result<()> {
        loop {
            let listed_at = chrono::Utc::now();
            let shards = stream::shards(self.aws, &self.stream.arn, &self.table.name).await?;
            if !resume {
                crate::source::stream::read::check(
                    self.aws,
                    &from,
                    &shards,
                    &self.table.name,
                    listed_at,
                )
                .await?;
            }
            // A table of changes ahead of this one (after a refresh, or a crash between the
            // two commits): read only up to it, into this table alone.
            let until = match self.changes {
                Some(changes) => match changes_step(changes, &from, &self.table.name).await? {
                    Standing::Ahead(until) => Some(until),
                    Standing::Even | Standing::Behind(_) => None,
                },
                None => None,
            };
            let catching_up = until.is_some();
            let changes = self.changes.filter(|_| !catching_up);
            let stats = Arc::new(StreamStats::new());
            let read = StreamRead {
                aws: self.aws.clone(),
                table: self.table.name.clone(),
                from,
                shards,
                listed_at,
                keep_expired: self.options.keep_expired,
                limit: self.options.max_records.max(1),
                retry_timeout: config.read.retry_timeout,
                stats: Arc::clone(&stats),
                stop: self.stop.clone(),
                until,
            };
            let mut run_config = config.clone();
            run_config.run.resume = std::mem::take(&mut resume);
            let run = RunContext::new(&run_config, Arc::clone(progress), cancel.clone());
            let committed =
                stream_run(self.aws, self.table, (self.root, changes), read, &run).await?;
            summary.add(&stats, committed);
            from = recorded_position(self.root, self.stream).await?;
            if catching_up && stats.records.load(Ordering::Relaxed) == 0 {
                return Err(Error::Internal(format!(
                    "the stream no longer holds the records between the Delta table's position \
                     and its table of changes' ({})",
                    self.stream.arn
                )));
            }
            // Caught up with the table of changes: what follows is read into both.
            let more = stats.more.load(Ordering::SeqCst) || catching_up;
            if !more || self.stop.is_cancelled() {
                return Ok(());
            }
        }
    }
}

impl SyncSummary {
    /// Nothing done yet.
    fn new(
        root: &Target,
        table: &TableInfo,
        stream: &StreamInfo,
        changes: Option<&Target>,
    ) -> Self {
        SyncSummary {
            url: root.url().to_owned(),
            table: table.name.clone(),
            stream: stream.arn.clone(),
            bootstrap: None,
            commits: Vec::new(),
            records: 0,
            expired_deletes: 0,
            get_records_calls: 0,
            lag_seconds: None,
            behind_seconds: None,
            version: None,
            shards: Vec::new(),
            changes: changes.map(|t| t.url().to_owned()),
            changes_version: None,
        }
    }

    /// Count the stream run `committed`, which read what `stats` say.
    fn add(&mut self, stats: &StreamStats, committed: Summary) {
        self.records += stats.records.load(Ordering::Relaxed);
        self.expired_deletes += stats.expired.load(Ordering::Relaxed);
        self.get_records_calls += stats.calls.load(Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let newest = stats.newest_ms.load(Ordering::Relaxed);
        if newest > 0 {
            self.lag_seconds = Some(now.saturating_sub(newest) as f64 / 1000.0);
        }
        let oldest = stats.oldest_ms.load(Ordering::Relaxed);
        if oldest != u64::MAX && self.behind_seconds.is_none() {
            let started = (committed.seconds * 1000.0) as u64;
            let age = now.saturating_sub(started).saturating_sub(oldest);
            self.behind_seconds = Some(age as f64 / 1000.0);
        }
        let read = std::mem::take(&mut *stats.shards.lock().unwrap_or_else(|e| e.into_inner()));
        for (shard, (records, newest)) in read {
            let lag = (newest > 0).then(|| now.saturating_sub(newest) as f64 / 1000.0);
            match self.shards.iter_mut().find(|s| s.shard == shard) {
                Some(seen) => {
                    seen.records += records;
                    seen.lag_seconds = lag.or(seen.lag_seconds);
                }
                None => self.shards.push(ShardRead {
                    shard,
                    records,
                    lag_seconds: lag,
                }),
            }
        }
        self.version = committed.delta.as_ref().map(|d| d.version).or(self.version);
        self.changes_version =
            (committed.changes.as_ref().map(|d| d.version)).or(self.changes_version);
        self.commits.push(committed);
    }
}

/// Where the Delta table at `root` says the stream is to be read from; `None` when the table
/// has to be loaded in full first (there is none, `--refresh`, or a new stream with
/// `--on-gap refresh`).
async fn held_position(
    root: &Target,
    table: &TableInfo,
    stream: &StreamInfo,
    config: &SnapshotConfig,
    options: &SyncOptions,
) -> Result<Option<StreamState>> {
    if options.refresh || !crate::format::delta::exists(root).await? {
        return Ok(None);
    }
    let held = crate::format::delta::latest_record(root)
        .await?
        .and_then(|(_, record)| record.stream);
    let Some(held) = held else {
        return Err(Error::invalid(format!(
            "{} holds a Delta table that records no position in a stream of {}; load it in \
             full from the table and its stream once with sync --refresh",
            root.url(),
            table.name
        )));
    };
    if held.arn == stream.arn {
        return Ok(Some(held));
    }
    match config.run.on_gap {
        OnGap::Refresh => Ok(None),
        OnGap::Force => Ok(Some(StreamState {
            arn: stream.arn.clone(),
            shards: Default::default(),
            listed_at: chrono::Utc::now(),
        })),
        OnGap::Fail => Err(Error::StreamGap {
            table: table.name.clone(),
            message: format!(
                "it has a new stream ({}) since the Delta table last read one ({}): the old \
                 stream was disabled, and changes made while none was on were never recorded",
                stream.arn, held.arn
            ),
        }),
    }
}

/// The stream position the latest commit of the Delta table at `root` records.
async fn recorded_position(root: &Target, stream: &StreamInfo) -> Result<StreamState> {
    crate::format::delta::latest_record(root)
        .await?
        .and_then(|(_, record)| record.stream)
        .ok_or_else(|| {
            Error::Internal(format!(
                "the sync of {} committed no stream position",
                stream.arn
            ))
        })
}

/// The table of changes at `url` (`--changes`), checked: not the Delta table at `root`
/// itself, and one that `sync --changes` keeps for this table, or none yet.
async fn changes_table(
    url: &str,
    root: &Target,
    aws: &AwsContext,
    config: &SnapshotConfig,
) -> Result<Target> {
    let destination = crate::sink::Destination::parse(url)?;
    let changes = Target::open(&destination, Some(&aws.s3), &config.output.s3).await?;
    if changes.url().trim_end_matches('/') == root.url().trim_end_matches('/') {
        return Err(Error::invalid(
            "--changes names the Delta table --to keeps; give the table of changes a URL of its              own",
        ));
    }
    crate::format::delta::check_writable(&changes, config.output.column_mapping).await?;
    Ok(changes)
}

/// Where a table of changes stands against the Delta table it follows.
enum Standing {
    /// At the same position (or it has no record yet, or it followed an earlier stream).
    Even,
    /// Further along in some shard, behind in none: its position.
    Ahead(StreamState),
    /// Behind in this shard: records the Delta table holds were never appended to it.
    Behind(String),
}

/// Where the table of changes at `changes` stands against the position `main` of the Delta
/// table of `table` it follows; an error when it is not a table of changes of `table`.
async fn changes_step(changes: &Target, main: &StreamState, table: &str) -> Result<Standing> {
    let Some((_, record)) = crate::format::delta::latest_record(changes).await? else {
        return Ok(Standing::Even);
    };
    let held = record
        .stream
        .filter(|_| record.shape.as_ref().is_some_and(|s| s.has_column("_seq")));
    let Some(held) = held else {
        return Err(Error::invalid(format!(
            "--changes {} is a Delta table that sync --changes did not make; give the table of              changes a URL of its own",
            changes.url()
        )));
    };
    if held.arn != main.arn {
        let table_of = |arn: &str| arn.split("/stream/").next().unwrap_or_default().to_owned();
        if table_of(&held.arn) != table_of(&main.arn) {
            return Err(Error::invalid(format!(
                "--changes {} holds the changes of another table ({}), not of {table}",
                changes.url(),
                held.arn
            )));
        }
        return Ok(Standing::Even);
    }
    let mut ahead = false;
    for (shard, at) in &main.shards {
        let theirs = held
            .shards
            .get(shard)
            .unwrap_or(&crate::cursor::ShardCursor::Start);
        match theirs.order(at) {
            std::cmp::Ordering::Less => return Ok(Standing::Behind(shard.clone())),
            std::cmp::Ordering::Greater => ahead = true,
            std::cmp::Ordering::Equal => {}
        }
    }
    Ok(if ahead {
        Standing::Ahead(held)
    } else {
        Standing::Even
    })
}

/// Before a sync reads: an error (a gap) when the table of changes at `changes` is behind the
/// Delta table's position `main` (a sync ran without `--changes`), unless `--on-gap force`.
async fn changes_not_behind(
    changes: &Target,
    main: &StreamState,
    table: &str,
    on_gap: OnGap,
) -> Result<()> {
    match changes_step(changes, main, table).await? {
        Standing::Behind(shard) if on_gap != OnGap::Force => Err(Error::StreamGap {
            table: table.to_owned(),
            message: format!(
                "the table of changes at {} is behind the Delta table in shard {shard}: a sync                  ran without --changes, and the records it read were never appended; continue                  with that gap with --on-gap force, or start a table of changes at another URL",
                changes.url()
            ),
        }),
        _ => Ok(()),
    }
}

/// Delete the unfinished stream run in `root`, if any (the one that found a gap).
async fn discard_unfinished_stream_run(root: &Target) -> Result<()> {
    if !matches!(unfinished(root).await?, Some((RunMode::Stream, _))) {
        return Ok(());
    }
    for run in root.runs().await? {
        if !run.unfinished || run.committed {
            continue;
        }
        let folder = root.child(&run.name);
        for file in folder.list_owned().await? {
            folder.delete(&file.location).await?;
        }
        if let Some(dir) = folder.local_dir() {
            crate::sink::remove_empty_folders(&dir);
        }
    }
    Ok(())
}

/// The mode and start of the run a sync killed before its commit left in `root`, if any.
async fn unfinished(root: &Target) -> Result<Option<(RunMode, chrono::DateTime<chrono::Utc>)>> {
    let runs = match root.runs().await {
        Ok(runs) => runs,
        // Nothing there yet (a local folder not created).
        Err(_) if !crate::format::delta::exists(root).await.unwrap_or(false) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(run) = runs.iter().rev().find(|r| r.unfinished && !r.committed) else {
        return Ok(None);
    };
    Ok(crate::checkpoint::read_checkpoint(&root.child(&run.name))
        .await?
        .map(|c| (c.mode, c.started_at)))
}

/// The full load of a sync: the whole table into a new version of the Delta table at `root`,
/// recording every shard of `stream` listed before the load "from its start" as where the
/// stream is read from next.
struct Load<'a> {
    aws: &'a AwsContext,
    table: &'a TableInfo,
    stream: &'a StreamInfo,
    root: &'a Target,
    /// When the load this one resumes started (its shards were listed just before).
    resumed_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Load through this export instead of a Scan (`--bootstrap export`).
    export: Option<&'a crate::source::export::ExportRequest>,
}

impl Load<'_> {
    /// Run it into `summary`'s `bootstrap`; returns the stream position it recorded.
    async fn load_into(
        &self,
        summary: &mut SyncSummary,
        config: &SnapshotConfig,
        (progress, cancel): (&Arc<dyn Progress>, &CancellationToken),
    ) -> Result<StreamState> {
        let (start, loaded) = self.run(config, progress, cancel).await?;
        summary.version = loaded.delta.as_ref().map(|d| d.version);
        summary.bootstrap = Some(loaded);
        Ok(start)
    }

    /// Run it; returns the stream position it recorded and its summary.
    async fn run(
        &self,
        config: &SnapshotConfig,
        progress: &Arc<dyn Progress>,
        cancel: &CancellationToken,
    ) -> Result<(StreamState, Summary)> {
        // An export reads no capacity: only a Scan's pace is bound by the read budget.
        if self.resumed_from.is_none() && self.export.is_none() {
            fits_in_the_stream(self.table, config)?;
        }
        let listed_at = self.resumed_from.unwrap_or_else(chrono::Utc::now);
        let shards = stream::shards(self.aws, &self.stream.arn, &self.table.name).await?;
        let start = stream::from_the_start(&self.stream.arn, &shards, listed_at);
        let mut load = config.clone();
        load.run.stream = Some(start.clone());
        load.run.resume = self.resumed_from.is_some();
        load.export = self.export.cloned();
        let summary = crate::Snapshot::new(load)
            .aws(self.aws.clone())
            .target(self.root.clone())
            .progress(Arc::clone(progress))
            .cancel(cancel.clone())
            .await?;
        Ok((start, summary))
    }
}

/// An error when loading `table` would take longer at `config`'s read budget than its stream
/// keeps records (24 hours: the changes made during the load would be trimmed before they are
/// read), with the estimate (the same as `describe`'s), 10% to spare.
fn fits_in_the_stream(table: &TableInfo, config: &SnapshotConfig) -> Result<()> {
    let budget =
        crate::throttle::ReadBudget::plan(table, config.read.read_fraction, config.read.max_rcu);
    let bytes = table.size_bytes.unwrap_or(0).max(0) as u64;
    let rcu = crate::throttle::scan_page_rcu(bytes, config.read.consistent_read);
    let seconds = rcu / budget.rcu_per_second.max(1e-9);
    if seconds <= stream::RETENTION.num_seconds() as f64 * 0.9 {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "loading {} ({:.1} GiB) at {} would take about {:.1} hours, longer than its stream \
         keeps the changes made meanwhile (24 hours); raise --read-fraction or --max-rcu, or \
         load it through an export (--bootstrap export --export-to s3://bucket/prefix; needs \
         point-in-time recovery)",
        table.name,
        bytes as f64 / (1u64 << 30) as f64,
        budget.describe(),
        seconds / 3600.0
    )))
}

/// One run of stream records (`read`) merged into the Delta table at `root` as its next
/// version.
async fn stream_run(
    aws: &AwsContext,
    table: &TableInfo,
    (root, changes): (&Target, Option<&Target>),
    read: StreamRead,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let config = run.config;
    let target = crate::plan::run_target(root.clone(), config, run.started.1).await?;
    // The positions this run commits hold from when it listed the shards (its pages replace
    // the shards' cursors as it reads).
    let publish = CommitPlan {
        stream: Some(StreamState {
            listed_at: read.listed_at,
            ..read.from.clone()
        }),
        changes: changes.cloned(),
        ..CommitPlan::new(config, &aws.region, table.clone())
    };
    let first_columns = table
        .key_schema
        .iter()
        .map(|k| k.name.clone())
        .chain(["_op".to_owned(), "_write_time".to_owned()])
        .collect();
    let origin = Origin {
        mode: RunMode::Stream,
        source: Some(read.from.arn.clone()),
        filter: None,
    };
    let readers = move |positions: &[Position], _lanes: usize| -> Result<Vec<Reader>> {
        let mut read = read;
        // A resumed run continues after the records its closed files hold.
        if let Some(Position::Stream { shards }) = positions.first() {
            read.from.shards = shards.clone();
        }
        Ok(vec![
            Box::new(move |handle: &Handle, tx: &PageSink, stop: &AtomicBool| {
                read.run(handle, tx, stop)
            }) as Reader,
        ])
    };
    let records = Files::new(origin, (1, None), first_columns, Box::new(readers));
    drive(records, publish, target, run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_longer_than_the_stream_keeps_changes_is_refused_with_the_estimate() {
        let table = |gib: i64, rcu: i64| TableInfo {
            name: "orders".into(),
            arn: None,
            key_schema: Vec::new(),
            item_count: None,
            size_bytes: Some(gib << 30),
            billing_mode: "PROVISIONED".into(),
            capacity: crate::table::ReadCapacity {
                provisioned_rcu: Some(rcu),
                ..Default::default()
            },
            indexes: Vec::new(),
        };
        let config = SnapshotConfig::builder("orders", "/tmp/t")
            .read_fraction(0.5)
            .build()
            .unwrap();
        // 100 GiB: 13.1 million RCU; at 50 RCU/s (half of 100), 73 hours.
        let err = fits_in_the_stream(&table(100, 100), &config).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("about 72.8 hours") && text.contains("--max-rcu"),
            "{text}"
        );
        // At 5,000 RCU/s, under an hour.
        assert!(fits_in_the_stream(&table(100, 10_000), &config).is_ok());
    }
}
