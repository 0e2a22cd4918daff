//! Reading a stream's shards into change-log rows, on a blocking thread.
//!
//! Each shard is read from its cursor with GetShardIterator (TRIM_HORIZON, or
//! AFTER_SEQUENCE_NUMBER) and GetRecords, in lineage order (a parent to its end before its
//! children; shards whose parents are read, at once, each on its own thread): a closed shard
//! to its end (no next iterator), an open one until it has nothing more (three empty pages in
//! a row). Every page of records becomes one page of rows whose position is the whole cursor
//! after it ([`Position::Stream`]), so the checkpoint, and then the commit, record exactly the
//! records in closed files.
//!
//! A record becomes the row the MERGE of a change log takes (as an incremental export's): the
//! keys and the new image as columns, `_op` (`insert`, `update`, `delete`), `_write_time` (the
//! record's approximate creation time in microseconds, raised by one where needed so that it
//! increases in stream order, which makes the latest change per key win), `_old` (the old
//! image, when the stream has it) and `_seq` (the record's sequence number, as text). A delete
//! by Time to Live (the record's user identity is the DynamoDB service) is a delete, unless
//! `keep_expired` keeps the row.
//!
//! Faults, as the DynamoDB Streams API reference lists them: an expired iterator (15 minutes)
//! is acquired again after the last record read; `LimitExceededException`, throttling and
//! server errors are retried with backoff until the run's retry timeout; a position older
//! than the stream's 24-hour trim horizon (`TrimmedDataAccessException`) or a shard the
//! stream dropped before it was read to its end is a [`Error::StreamGap`]: changes were lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as AV;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, Record, ShardIteratorType,
};
use tokio::runtime::Handle;

use super::{Shard, ShardCursor, StreamState};
use crate::aws::AwsContext;
use crate::checkpoint::Position;
use crate::convert::{Item, Rows};
use crate::error::{Error, Result};
use crate::source::export::CHANGE_COLUMNS;
use crate::source::scan::{Page, PageSink};

/// Records GetRecords returns at most.
const PAGE_RECORDS: i32 = 1000;
/// Empty pages in a row after which an open shard has nothing more for a one-shot run.
const CAUGHT_UP_AFTER: u32 = 3;
/// The principal of the deletes Time to Live makes.
const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// Shards read at once (each its own thread and GetRecords calls; Streams' limits are per
/// shard).
const SHARDS_AT_ONCE: usize = 8;

/// Where a read stands, shared by the threads reading shards.
struct Reading {
    /// Every shard's cursor.
    cursor: crate::cursor::StreamCursor,
    /// The last `_write_time` given in each shard read.
    clocks: std::collections::HashMap<String, i128>,
}

impl Reading {
    /// The last `_write_time` given in `shard`, else in its parent: a key's changes move from
    /// a parent to its children, so its times keep increasing.
    fn clock(&self, shard: &Shard) -> i128 {
        self.clocks
            .get(&shard.id)
            .or_else(|| shard.parent.as_ref().and_then(|p| self.clocks.get(p)))
            .copied()
            .unwrap_or(0)
    }
}

/// What a stream read did, shared with the run's summary.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    /// Records read.
    pub records: AtomicU64,
    /// GetRecords calls made.
    pub calls: AtomicU64,
    /// Deletes by Time to Live among the records.
    pub expired: AtomicU64,
    /// True when the read stopped at `limit` records with more to read.
    pub more: AtomicBool,
    /// The approximate creation time (ms since 1970) of the newest record read.
    pub newest_ms: AtomicU64,
    /// ... and of the oldest (`u64::MAX` until one is read): how far behind the table was.
    pub oldest_ms: AtomicU64,
    /// Per shard read: records read and the creation time (ms) of the newest.
    pub shards: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl StreamStats {
    /// No record read yet.
    pub(crate) fn new() -> Self {
        StreamStats {
            oldest_ms: AtomicU64::new(u64::MAX),
            ..StreamStats::default()
        }
    }
}

/// One read of a stream: from `from`, over the shards the stream lists now (`shards`, in
/// lineage order), at most `limit` records.
pub(crate) struct StreamRead {
    pub aws: AwsContext,
    pub table: String,
    pub from: StreamState,
    pub shards: Vec<Shard>,
    /// When `shards` were listed.
    pub listed_at: chrono::DateTime<chrono::Utc>,
    pub keep_expired: bool,
    pub limit: u64,
    pub retry_timeout: Duration,
    pub stats: Arc<StreamStats>,
    /// Stop reading (as if caught up) once it fires: the run commits what it read.
    pub stop: tokio_util::sync::CancellationToken,
    /// Read no further than this: each shard up to its cursor here (a shard it does not hold,
    /// or holds at its start, is not read). `None`: as far as the stream goes.
    pub until: Option<StreamState>,
}

/// The cursor `from` over the shards `listed` (at `now`): every shard listed and not in it
/// starts at its start (a new shard); shards it holds that are no longer listed are dropped
/// when read to their end, and are a gap otherwise (the stream trimmed records never read), as
/// is a cursor listed more than the stream's 24 hours ago (records may have been trimmed, from
/// shards listed or not).
pub(crate) fn carried_over(
    from: &StreamState,
    listed: &[Shard],
    table: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StreamState> {
    if now - from.listed_at > super::RETENTION {
        return Err(Error::StreamGap {
            table: table.to_owned(),
            message: format!(
                "the Delta table's stream positions were taken at {}, more than the stream's 24 \
                 hours ago, so records may have been trimmed before they were read; sync at \
                 least once a day",
                from.listed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        });
    }
    let mut shards = std::collections::BTreeMap::new();
    for shard in listed {
        let cursor = from
            .shards
            .get(&shard.id)
            .cloned()
            .unwrap_or(ShardCursor::Start);
        shards.insert(shard.id.clone(), cursor);
    }
    for (id, cursor) in &from.shards {
        if !shards.contains_key(id) && *cursor != ShardCursor::Done {
            return Err(Error::StreamGap {
                table: table.to_owned(),
                message: format!(
                    "shard {id} of its stream was dropped (older than the stream's 24 hours) \
                     before ddbsnap read it to its end, so changes in it were lost"
                ),
            });
        }
    }
    Ok(StreamState {
        arn: from.arn.clone(),
        shards,
        listed_at: now,
    })
}

/// Before a run writes anything: an error when reading the stream from `from` would miss
/// records ([`carried_over`], and a position the stream has trimmed since: GetShardIterator
/// after it fails with `TrimmedDataAccessException`).
pub(crate) async fn check(
    aws: &AwsContext,
    from: &StreamState,
    listed: &[Shard],
    table: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let cursor = carried_over(from, listed, table, now)?;
    for shard in listed {
        let Some(ShardCursor::After(sequence)) = cursor.shards.get(&shard.id) else {
            continue;
        };
        let call = aws
            .streams
            .get_shard_iterator()
            .stream_arn(&from.arn)
            .shard_id(&shard.id)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(sequence);
        match call.send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("TrimmedDataAccessException") => {
                return Err(trimmed(table, &shard.id));
            }
            Err(e) => return Err(aws.classify("GetShardIterator", table, e)),
        }
    }
    Ok(())
}

fn trimmed(table: &str, shard: &str) -> Error {
    Error::StreamGap {
        table: table.to_owned(),
        message: format!(
            "the records of shard {shard} after the position the Delta table holds are older \
             than the stream's 24 hours and were trimmed, so changes were lost"
        ),
    }
}

impl StreamRead {
    /// Read every shard into `tx`, then send the final cursor. Shards are read in waves: every
    /// shard whose parent is read to its end (or is not listed) at once, up to
    /// [`SHARDS_AT_ONCE`] at a time; their children in a later wave.
    pub(crate) fn run(self, handle: &Handle, tx: &PageSink, stop: &AtomicBool) -> Result<()> {
        let cursor = carried_over(&self.from, &self.shards, &self.table, self.listed_at)?;
        let shared = std::sync::Mutex::new(Reading {
            cursor: cursor.shards,
            clocks: std::collections::HashMap::new(),
        });
        let mut handled = std::collections::HashSet::new();
        let this = &self;
        loop {
            let wave = self.ready(&shared, &handled);
            if wave.is_empty() || self.stopped(stop) {
                break;
            }
            for group in wave.chunks(SHARDS_AT_ONCE) {
                let outcomes: Vec<Result<()>> = std::thread::scope(|scope| {
                    let threads: Vec<_> = group
                        .iter()
                        .map(|(shard, at, until)| {
                            let (this, shared) = (&*this, &shared);
                            scope.spawn(move || {
                                this.read_into(
                                    handle,
                                    shard,
                                    (at.clone(), until.clone()),
                                    shared,
                                    (tx, stop),
                                )
                            })
                        })
                        .collect();
                    threads
                        .into_iter()
                        .map(|t| {
                            t.join().unwrap_or_else(|_| {
                                Err(Error::Internal("a shard reader panicked".into()))
                            })
                        })
                        .collect()
                });
                outcomes.into_iter().collect::<Result<Vec<()>>>()?;
            }
            handled.extend(wave.into_iter().map(|(shard, _, _)| shard.id.clone()));
        }
        let reading = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        let position = Position::Stream {
            shards: reading.cursor,
        };
        Ok(tx.blocking_send(Page::from_rows(0, Rows::new(), position))?)
    }

    /// True when the read should end: stopped, or `limit` records read.
    fn stopped(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::SeqCst)
            || self.stats.more.load(Ordering::SeqCst)
            || self.stop.is_cancelled()
    }

    /// The shards not `handled` yet that can be read now (their parent read to its end, or not
    /// listed), each with its cursor and how far to read it; those with nothing to read left
    /// out.
    fn ready(
        &self,
        shared: &std::sync::Mutex<Reading>,
        handled: &std::collections::HashSet<String>,
    ) -> Vec<(&Shard, ShardCursor, ShardCursor)> {
        let reading = shared.lock().unwrap_or_else(|e| e.into_inner());
        let at = |id: &str| {
            reading
                .cursor
                .get(id)
                .cloned()
                .unwrap_or(ShardCursor::Start)
        };
        let listed: std::collections::HashSet<&str> =
            self.shards.iter().map(|s| s.id.as_str()).collect();
        let mut wave = Vec::new();
        for shard in &self.shards {
            let parent_done = shard
                .parent
                .as_deref()
                .is_none_or(|p| !listed.contains(p) || at(p) == ShardCursor::Done);
            if handled.contains(&shard.id) || !parent_done {
                continue;
            }
            let until = match &self.until {
                None => ShardCursor::Done,
                Some(until) => until
                    .shards
                    .get(&shard.id)
                    .cloned()
                    .unwrap_or(ShardCursor::Start),
            };
            let from = at(&shard.id);
            if from.order(&until).is_lt() {
                wave.push((shard, from, until));
            }
        }
        wave
    }

    /// Read `shard` from `at` up to `until` into `tx`: each page of rows carries the whole
    /// cursor after it (`shared`, updated and sent under its lock, so pages reach the
    /// conversion in the order of their cursors; the rows are made outside it, so shards read
    /// at once convert at once).
    fn read_into(
        &self,
        handle: &Handle,
        shard: &Shard,
        (at, until): (ShardCursor, ShardCursor),
        shared: &std::sync::Mutex<Reading>,
        (tx, stop): (&PageSink, &AtomicBool),
    ) -> Result<()> {
        self.read_shard(
            handle,
            shard,
            (at, until),
            &mut |records, after| {
                self.count(&shard.id, records);
                // Only this thread gives times in this shard (its parent was read before it).
                let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
                let mut clock = lock().clock(shard);
                let rows = Rows::from_items(&self.rows(records, &mut clock)?)?;
                let mut reading = lock();
                reading.clocks.insert(shard.id.clone(), clock);
                reading.cursor.insert(shard.id.clone(), after);
                let position = Position::Stream {
                    shards: reading.cursor.clone(),
                };
                tx.blocking_send(Page::from_rows(0, rows, position))?;
                Ok(())
            },
            stop,
        )
    }

    /// Read `shard` from `at` up to `until` (its end: [`ShardCursor::Done`]), handing each
    /// page of records and the shard's cursor after it to `page`.
    fn read_shard(
        &self,
        handle: &Handle,
        shard: &Shard,
        (mut at, until): (ShardCursor, ShardCursor),
        page: &mut dyn FnMut(&[Record], ShardCursor) -> Result<()>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mut iterator = self.iterator(handle, shard, &at)?;
        let mut empty = 0u32;
        let mut failing_since: Option<Instant> = None;
        loop {
            if stop.load(Ordering::SeqCst) || self.stop.is_cancelled() {
                return Ok(());
            }
            let call = self
                .aws
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(PAGE_RECORDS);
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            let out = match handle.block_on(call.send()) {
                Ok(out) => {
                    failing_since = None;
                    out
                }
                Err(e) => {
                    match e.code().unwrap_or_default() {
                        "ExpiredIteratorException" => {
                            iterator = self.iterator(handle, shard, &at)?;
                        }
                        "TrimmedDataAccessException" => return Err(self.trimmed(shard)),
                        "LimitExceededException"
                        | "ThrottlingException"
                        | "InternalServerError"
                        | "ServiceUnavailable" => {
                            let since = *failing_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > self.retry_timeout {
                                return Err(self.aws.classify("GetRecords", &self.table, e));
                            }
                            std::thread::sleep(Duration::from_millis(250 + fastrand::u64(..250)));
                        }
                        _ => return Err(self.aws.classify("GetRecords", &self.table, e)),
                    }
                    continue;
                }
            };
            let (records, reached) = up_to(out.records(), &until);
            if let Some(last) = records.last().and_then(|r| r.dynamodb()) {
                let sequence = last.sequence_number().unwrap_or_default().to_owned();
                at = ShardCursor::After(sequence);
                page(records, at.clone())?;
                empty = 0;
            }
            if reached {
                return Ok(());
            }
            match out.next_shard_iterator() {
                None => {
                    page(&[], ShardCursor::Done)?;
                    return Ok(());
                }
                Some(next) => iterator = next.to_owned(),
            }
            if records.is_empty() {
                empty += 1;
                if empty >= CAUGHT_UP_AFTER && !shard.closed {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let read = self.stats.records.load(Ordering::Relaxed);
            if read >= self.limit {
                self.stats.more.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
    }

    /// An iterator of `shard` at `at`.
    fn iterator(&self, handle: &Handle, shard: &Shard, at: &ShardCursor) -> Result<String> {
        let mut call = self
            .aws
            .streams
            .get_shard_iterator()
            .stream_arn(&self.from.arn)
            .shard_id(&shard.id);
        call = match at {
            ShardCursor::After(sequence) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            _ => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match handle.block_on(call.send()) {
            Ok(out) => out
                .shard_iterator()
                .map(str::to_owned)
                .ok_or_else(|| Error::Internal(format!("no iterator for shard {}", shard.id))),
            Err(e) if e.code() == Some("TrimmedDataAccessException") => Err(self.trimmed(shard)),
            Err(e) => Err(self.aws.classify("GetShardIterator", &self.table, e)),
        }
    }

    fn trimmed(&self, shard: &Shard) -> Error {
        trimmed(&self.table, &shard.id)
    }

    /// Count `records` read from shard `id`.
    fn count(&self, id: &str, records: &[Record]) {
        let newest = records
            .iter()
            .filter_map(|r| {
                r.dynamodb()?
                    .approximate_creation_date_time()?
                    .to_millis()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            .max(0) as u64;
        let mut shards = self.stats.shards.lock().unwrap_or_else(|e| e.into_inner());
        let entry = shards.entry(id.to_owned()).or_default();
        entry.0 += records.len() as u64;
        entry.1 = entry.1.max(newest);
    }

    /// The change-log rows of `records`, `clock` the last `_write_time` given.
    fn rows(&self, records: &[Record], clock: &mut i128) -> Result<Vec<Item>> {
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            let Some(change) = record.dynamodb() else {
                continue;
            };
            let expired = record.user_identity().is_some_and(|who| {
                who.r#type() == Some("Service") && who.principal_id() == Some(TTL_PRINCIPAL)
            });
            if expired {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                if self.keep_expired {
                    continue;
                }
            }
            let micros = change
                .approximate_creation_date_time()
                .map_or(0, |t| t.as_nanos() / 1000);
            if let Ok(ms) = u64::try_from(micros / 1000) {
                self.stats.newest_ms.fetch_max(ms, Ordering::Relaxed);
                self.stats.oldest_ms.fetch_min(ms, Ordering::Relaxed);
            }
            *clock = (*clock + 1).max(micros);
            rows.push(row(record.event_name(), change, *clock)?);
        }
        Ok(rows)
    }
}

/// The records of a page up to the cursor `until`, and whether they reach it (the shard is
/// read as far as asked).
fn up_to<'r>(records: &'r [Record], until: &ShardCursor) -> (&'r [Record], bool) {
    let ShardCursor::After(last) = until else {
        return (records, false);
    };
    let order = |r: &Record| {
        let sequence = r.dynamodb().and_then(|d| d.sequence_number());
        crate::cursor::sequence_order(sequence.unwrap_or_default(), last)
    };
    let within = records.iter().take_while(|r| order(r).is_le()).count();
    let reached = within < records.len() || records.last().is_some_and(|r| order(r).is_eq());
    (&records[..within], reached)
}

/// The change-log row of one record (see the module documentation).
fn row(
    event: Option<&OperationType>,
    change: &aws_sdk_dynamodbstreams::types::StreamRecord,
    write_time: i128,
) -> Result<Item> {
    let op = match event {
        Some(OperationType::Insert) => "insert",
        Some(OperationType::Modify) => "update",
        Some(OperationType::Remove) => "delete",
        other => {
            return Err(Error::invalid(format!(
                "a stream record has event name {other:?}, not INSERT, MODIFY or REMOVE"
            )));
        }
    };
    let mut item: Item = items(change.keys())?;
    if op != "delete" {
        item.extend(items(change.new_image())?);
    }
    if let Some(name) = CHANGE_COLUMNS.iter().find(|name| item.contains_key(**name)) {
        return Err(Error::invalid(format!(
            "an item has an attribute '{name}', which the change log of a stream uses for itself"
        )));
    }
    item.insert("_op".into(), AV::S(op.into()));
    item.insert("_write_time".into(), AV::N(write_time.to_string()));
    if let Some(old) = change.old_image() {
        item.insert("_old".into(), AV::M(items(Some(old))?));
    }
    let sequence = change.sequence_number().unwrap_or_default();
    item.insert("_seq".into(), AV::S(sequence.to_owned()));
    Ok(item)
}

fn items(values: Option<&std::collections::HashMap<String, StreamValue>>) -> Result<Item> {
    values
        .into_iter()
        .flatten()
        .map(|(k, v)| Ok((k.clone(), value(v, k)?)))
        .collect()
}

/// A Streams attribute value as DynamoDB's own (the two SDKs each have the type); a type this
/// SDK does not know fails, naming the attribute `name`.
fn value(v: &StreamValue, name: &str) -> Result<AV> {
    Ok(match v {
        StreamValue::S(s) => AV::S(s.clone()),
        StreamValue::N(n) => AV::N(n.clone()),
        StreamValue::B(b) => AV::B(b.clone()),
        StreamValue::Bool(b) => AV::Bool(*b),
        StreamValue::Null(n) => AV::Null(*n),
        StreamValue::Ss(s) => AV::Ss(s.clone()),
        StreamValue::Ns(n) => AV::Ns(n.clone()),
        StreamValue::Bs(b) => AV::Bs(b.clone()),
        StreamValue::L(l) => AV::L(l.iter().map(|v| value(v, name)).collect::<Result<_>>()?),
        StreamValue::M(m) => AV::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), value(v, k)?)))
                .collect::<Result<_>>()?,
        ),
        _ => {
            return Err(Error::Unrepresentable {
                path: name.to_owned(),
                message: "a stream record holds a value of a type this ddbsnap does not know"
                    .into(),
            });
        }
    })
}
