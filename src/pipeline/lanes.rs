//! The conversion lanes: the threads that turn pages into Parquet files, and the one
//! checkpoint and schema they share.
//!
//! ```text
//!            PageSink: segment % lanes   ┌─> lane 0: observe, encode, its own rolling files ─┐
//! sources ───────────────────────────────┤                                                    ├─> Ledger
//!                                        └─> lane 1: ...                                     ─┘  (schema,
//!                                                                                                checkpoint)
//! ```
//!
//! Each lane is a blocking thread with its own [`RollingWriter`]; file numbers come from one
//! counter, so no two lanes write the same name. Every page of a segment (or of an export's
//! data file) goes to the same lane, so a segment's pages are written in order.
//!
//! Schema: the lanes widen one shared [`TableShape`] with every page and write with the columns
//! resolved from it, so they agree on the schema as soon as any of them has seen an attribute;
//! a file written before a widening is re-encoded at the commit, as with one lane.
//!
//! Checkpoint: each lane owns the positions of its segments, its closed files and its share of
//! the totals. Files close only between pages, and after a close the lane hands its state to
//! the [`Ledger`], which saves the checkpoint made of every lane's state as of that lane's last
//! close. So whichever lane saves it, the checkpoint covers exactly the items in closed files.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::checkpoint::{
    Checkpoint, CheckpointFile, Position, Totals, next_file_index, write_checkpoint,
};
use crate::config::SnapshotConfig;
use crate::convert::{Columns, NumberMode, Rows, TableShape};
use crate::error::{Error, Result};
use crate::filter::{TimeCheck, WindowStats};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::writer::{RollingWriter, WriterOptions};
use crate::sink::{DataFile, Target};
use crate::source::scan::{Msg, Page};
use crate::throttle::Throttle;

use super::resume::{discard, resumable};
use crate::filter::ExpiryCheck;
use crate::source::scan::PageSink;

/// Pages observed before the first file is opened (each page is at most 1 MB of items).
pub const SAMPLE_PAGES: usize = 4;

/// Rows per encoded batch when flushing held-back items.
pub(super) const BATCH_ROWS: usize = 8192;

/// Input per lane when the run picks the number of lanes: a table or export smaller than this
/// is converted by one lane (and so into one file while it is under the target file size).
const LANE_INPUT_BYTES: u64 = 64 << 20;

/// Pages queued for each lane (besides the one it is converting).
const LANE_QUEUE: usize = 2;

/// How many lanes convert a run: `threads` when given, else one per two cores available to
/// the process (the other half parses: Scan responses on blocking threads, export files on
/// their readers), but no more than one per [`LANE_INPUT_BYTES`] of input (`input_bytes`, when
/// known); never more than the `sources` (segments, data files) left to read, and at least one.
pub(super) fn lane_count(threads: Option<u32>, input_bytes: Option<u64>, sources: usize) -> usize {
    let wanted = match threads {
        Some(n) => n as usize,
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let by_input = input_bytes.map_or(cores, |b| b.div_ceil(LANE_INPUT_BYTES) as usize);
            (cores / 2).min(by_input)
        }
    };
    wanted.min(sources).max(1)
}

/// How a run's lanes convert: what the sources report themselves, and what a scan adds.
pub(super) struct LaneSetup<'a> {
    pub(super) target: &'a Target,
    pub(super) writer: &'a WriterOptions,
    pub(super) progress: &'a Arc<dyn Progress>,
    pub(super) config: &'a SnapshotConfig,
    /// The exact timestamp window of an incremental pull.
    pub(super) time: Option<TimeCheck>,
    /// `--skip-expired`: which items have expired.
    pub(super) expiry: Option<ExpiryCheck>,
    /// The scan's throttle, whose throttled and retried counts go into the checkpoint.
    pub(super) throttle: Option<Arc<Throttle>>,
    /// Report each page to `progress` (sources other than a scan, whose tasks report their
    /// own).
    pub(super) report_pages: bool,
}

/// The running lanes of a conversion.
pub(super) struct Conversion {
    lanes: Vec<tokio::task::JoinHandle<Result<bool>>>,
    ledger: Arc<Ledger>,
    /// For the one empty file of a run without items.
    writer: WriterOptions,
    numbers: Arc<AtomicUsize>,
    progress: Arc<dyn Progress>,
    number_mode: NumberMode,
}

impl Conversion {
    /// Start `lanes` lanes from `checkpoint` (each on a blocking thread); returns where the
    /// sources send their pages. Each lane's row groups get an equal share of the configured
    /// row group size, so the lanes together hold what one would.
    pub(super) fn start(
        setup: LaneSetup<'_>,
        checkpoint: Checkpoint,
        lanes: usize,
    ) -> (PageSink, Conversion) {
        let lanes = lanes.max(1);
        let numbers = Arc::new(AtomicUsize::new(next_file_index(&checkpoint.files)));
        let writer = WriterOptions {
            row_group_bytes: (setup.writer.row_group_bytes / lanes).max(1 << 20),
            ..setup.writer.clone()
        };
        let ledger = Arc::new(Ledger::new(
            setup.target.clone(),
            checkpoint,
            lanes,
            setup.throttle,
            Arc::clone(setup.progress),
        ));
        let mut senders = Vec::with_capacity(lanes);
        let mut running = Vec::with_capacity(lanes);
        for index in 0..lanes {
            let (tx, rx) = mpsc::channel::<Msg>(LANE_QUEUE);
            senders.push(tx);
            let lane = Lane {
                index,
                writer: RollingWriter::new(
                    setup.target.clone(),
                    Handle::current(),
                    writer.clone(),
                    Arc::clone(setup.progress),
                    0,
                )
                .numbered_by(Arc::clone(&numbers)),
                numbers: setup.config.output.numbers,
                time: setup.time.clone(),
                expiry: setup.expiry.clone(),
                state: LaneState::default(),
                ledger: Arc::clone(&ledger),
                progress: Arc::clone(setup.progress),
                held: Vec::new(),
                held_pages: Vec::new(),
                sampling: true,
                max_file_age: setup.config.run.checkpoint_interval,
                report_pages: setup.report_pages,
            };
            running.push(tokio::task::spawn_blocking(move || lane.run(rx)));
        }
        let conversion = Conversion {
            lanes: running,
            ledger,
            writer,
            numbers,
            progress: Arc::clone(setup.progress),
            number_mode: setup.config.output.numbers,
        };
        (PageSink::new(senders), conversion)
    }

    /// Once every source has stopped: when none failed (`error` is `None`), tell the lanes the
    /// sources are complete so they close their last files, and return the checkpoint to
    /// commit; otherwise the first error, made resumable (what arrived is checkpointed).
    pub(super) async fn finish(
        self,
        sink: PageSink,
        error: Option<Error>,
        target: &Target,
    ) -> Result<Checkpoint> {
        if error.is_none() {
            sink.end().await;
        }
        drop(sink);
        let mut failed = None;
        let mut complete = true;
        for lane in self.lanes {
            match lane.await {
                Ok(Ok(done)) => complete &= done,
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(Error::Internal(format!("conversion thread failed: {e}")));
                }
            }
        }
        // A source that met a stopped lane only says so; the lane's error says why.
        let error = match (error, failed) {
            (Some(e), Some(lane)) if crate::source::scan::is_lane_stopped(&e) => Some(lane),
            (e, lane) => e.or(lane),
        };
        if let Some(e) = error {
            if matches!(e, Error::InvalidArgument { .. }) {
                // The options do not fit the data (a wrong --key): no resume can help, and
                // the corrected command must find the target as this run found it.
                discard(target).await?;
            }
            return Err(resumable(e, target));
        }
        if !complete {
            return Err(Error::Internal("the conversion stopped early".into()));
        }
        if self.ledger.has_no_files()? {
            // An empty table still gets one (empty) file carrying the schema, so readers work.
            let columns = self.ledger.columns(self.number_mode)?;
            let writer = RollingWriter::new(
                target.clone(),
                Handle::current(),
                self.writer,
                self.progress,
                0,
            )
            .numbered_by(self.numbers);
            let ledger = Arc::clone(&self.ledger);
            tokio::task::spawn_blocking(move || {
                let mut writer = writer;
                writer.write(&columns, &Rows::new())?;
                let files = writer.finish()?;
                let handle = Handle::current();
                ledger.save_files(&files, &handle)
            })
            .await
            .map_err(|e| Error::Internal(format!("conversion thread failed: {e}")))?
            .map_err(|e| resumable(e, target))?;
        }
        self.ledger.checkpoint()
    }
}

/// What one lane has converted into closed files: the positions of its segments, its files,
/// its share of the totals and of the timestamp window's counts.
#[derive(Debug, Clone, Default)]
struct LaneState {
    positions: BTreeMap<u32, Position>,
    files: Vec<CheckpointFile>,
    totals: Totals,
    window: WindowStats,
}

/// The schema and checkpoint the lanes share.
struct Ledger {
    target: Target,
    /// Every item any lane has observed: the schema the lanes write with.
    shape: Mutex<TableShape>,
    saved: Mutex<Saved>,
    /// The scan's throttle, for its throttled and retried counts.
    throttle: Option<Arc<Throttle>>,
    progress: Arc<dyn Progress>,
}

/// The run's checkpoint as it started, and each lane's state as of its last close.
struct Saved {
    base: Checkpoint,
    lanes: Vec<LaneState>,
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| Error::Internal("a conversion thread panicked".into()))
}

impl Ledger {
    fn new(
        target: Target,
        base: Checkpoint,
        lanes: usize,
        throttle: Option<Arc<Throttle>>,
        progress: Arc<dyn Progress>,
    ) -> Self {
        Ledger {
            target,
            shape: Mutex::new(base.shape.clone()),
            saved: Mutex::new(Saved {
                base,
                lanes: vec![LaneState::default(); lanes],
            }),
            throttle,
            progress,
        }
    }

    /// Widen the shared schema by `seen` (a page's items) and return the columns to write with.
    fn widen(&self, seen: &TableShape, numbers: NumberMode) -> Result<Columns> {
        let mut shape = lock(&self.shape)?;
        shape.merge(seen);
        Ok(shape.resolve(numbers))
    }

    /// The columns of the shared schema.
    fn columns(&self, numbers: NumberMode) -> Result<Columns> {
        Ok(lock(&self.shape)?.resolve(numbers))
    }

    /// The checkpoint of what every lane had in closed files at its last close.
    fn checkpoint(&self) -> Result<Checkpoint> {
        let saved = lock(&self.saved)?;
        self.merged(&saved)
    }

    fn merged(&self, saved: &Saved) -> Result<Checkpoint> {
        let mut checkpoint = saved.base.clone();
        for lane in &saved.lanes {
            for (&segment, position) in &lane.positions {
                checkpoint.positions[segment as usize] = position.clone();
            }
            checkpoint.files.extend(lane.files.iter().cloned());
            checkpoint.totals.add(&lane.totals);
            if let Some(window) = &mut checkpoint.window {
                window.merge(&lane.window);
            }
        }
        if let Some(throttle) = &self.throttle {
            let (throttled, retried) = throttle.counts();
            checkpoint.totals.throttled_requests += throttled;
            checkpoint.totals.retried_requests += retried;
        }
        checkpoint.shape = lock(&self.shape)?.clone();
        checkpoint.updated_at = Utc::now();
        Ok(checkpoint)
    }

    fn has_no_files(&self) -> Result<bool> {
        let saved = lock(&self.saved)?;
        Ok(saved.base.files.is_empty() && saved.lanes.iter().all(|l| l.files.is_empty()))
    }

    /// Record lane `index`'s `state` (just after a close) and save the checkpoint. Saves are
    /// serialized, so a later save never loses to an earlier one.
    fn save(&self, index: usize, state: &LaneState, handle: &Handle) -> Result<()> {
        let mut saved = lock(&self.saved)?;
        saved.lanes[index] = state.clone();
        self.write(&saved, handle)
    }

    /// Record `files` written outside the lanes and save the checkpoint.
    fn save_files(&self, files: &[DataFile], handle: &Handle) -> Result<()> {
        let mut saved = lock(&self.saved)?;
        saved
            .base
            .files
            .extend(files.iter().map(CheckpointFile::new));
        self.write(&saved, handle)
    }

    fn write(&self, saved: &Saved, handle: &Handle) -> Result<()> {
        let checkpoint = self.merged(saved)?;
        handle.block_on(write_checkpoint(&self.target, &checkpoint))?;
        self.progress.event(&ProgressEvent::Checkpointed {
            files: checkpoint.files.len(),
            items: checkpoint.totals.items_written,
        });
        Ok(())
    }
}

/// A page whose items were handed to the writer: what it adds to the checkpoint.
struct PageDone {
    segment: u32,
    next: Position,
    items: u64,
    scanned: u64,
    consumed_rcu: f64,
    /// What the timestamp window check saw in the page.
    window: WindowStats,
    /// Items left out as expired.
    expired: u64,
}

impl PageDone {
    fn of(page: &Page) -> Self {
        PageDone {
            segment: page.segment,
            next: page.after.clone(),
            items: 0,
            scanned: page.scanned,
            consumed_rcu: page.consumed_rcu,
            window: WindowStats::default(),
            expired: 0,
        }
    }
}

/// One conversion lane: its writer, and its state since the run started.
///
/// Invariant: `state` covers exactly the pages whose items were handed to the writer; files
/// close only between pages, so right after a close it covers exactly the items in closed
/// files, and that is when it goes to the ledger.
struct Lane {
    index: usize,
    writer: RollingWriter,
    numbers: NumberMode,
    time: Option<TimeCheck>,
    expiry: Option<ExpiryCheck>,
    state: LaneState,
    ledger: Arc<Ledger>,
    progress: Arc<dyn Progress>,
    /// Items of the first pages, held for schema inference before the first file opens.
    held: Vec<Rows>,
    held_pages: Vec<PageDone>,
    /// True until the first [`SAMPLE_PAGES`] pages are written.
    sampling: bool,
    max_file_age: Duration,
    report_pages: bool,
}

impl Lane {
    /// Convert every page that arrives on `rx`. Returns whether the sources finished
    /// ([`Msg::End`]); when they did not (an error or Ctrl-C upstream), what was received is
    /// written and checkpointed so a resume loses nothing. On its own errors the open upload
    /// is aborted (the writer is dropped) and the lane's last saved state stands.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<bool> {
        let complete = loop {
            match rx.blocking_recv() {
                Some(Msg::Page(page)) => self.page(*page)?,
                Some(Msg::End) => break true,
                None => break false,
            }
        };
        self.flush_held()?;
        self.close_and_save()?;
        Ok(complete)
    }

    fn page(&mut self, page: Page) -> Result<()> {
        let mut done = PageDone::of(&page);
        let (mut items, shape) = page.into_parts();
        let parsed = items.len();
        if self.report_pages {
            self.progress.event(&ProgressEvent::Page {
                segment: done.segment,
                items: items.len() as u64,
                scanned: done.scanned,
                consumed_rcu: 0.0,
            });
        }
        if let Some(expiry) = &self.expiry {
            let before = items.len();
            items.retain(|rows, i| !expiry.expired(rows, i));
            done.expired = (before - items.len()) as u64;
        }
        if let Some(check) = &mut self.time {
            items.retain(|rows, i| check.keep(rows, i));
            done.window = check.take_stats();
        }
        done.items = items.len() as u64;
        // The page's schema came inferred with it, unless a filter dropped items (whose
        // attributes must not widen the columns).
        let seen = if items.len() == parsed {
            shape
        } else {
            TableShape::of_rows(&items)
        };
        let columns = self.ledger.widen(&seen, self.numbers)?;
        if self.sampling {
            self.held.push(items);
            self.held_pages.push(done);
            if self.held_pages.len() == SAMPLE_PAGES {
                self.flush_held()?;
            }
            return Ok(());
        }
        if self.writer.columns_differ(&columns) {
            self.close_and_save()?;
        }
        if !items.is_empty() {
            self.writer.write(&columns, &items)?;
        }
        items.recycle();
        self.mark(done);
        if self.writer.roll_due(Some(self.max_file_age)) {
            self.close_and_save()?;
        }
        Ok(())
    }

    /// Write the held-back items (in one file: no close between them) and count their pages.
    fn flush_held(&mut self) -> Result<()> {
        // Later pages are no longer held (the sample is complete or the sources are done).
        self.sampling = false;
        if self.held_pages.is_empty() {
            return Ok(());
        }
        let columns = self.ledger.columns(self.numbers)?;
        for rows in std::mem::take(&mut self.held) {
            if !rows.is_empty() {
                self.writer.write(&columns, &rows)?;
            }
            rows.recycle();
        }
        for done in std::mem::take(&mut self.held_pages) {
            self.mark(done);
        }
        Ok(())
    }

    fn mark(&mut self, done: PageDone) {
        let totals = &mut self.state.totals;
        totals.pages += 1;
        totals.items_written += done.items;
        totals.items_expired += done.expired;
        totals.items_scanned += done.scanned;
        totals.consumed_rcu += done.consumed_rcu;
        self.state.window.merge(&done.window);
        self.state.positions.insert(done.segment, done.next);
    }

    /// Close the open file, if any, and save the checkpoint.
    fn close_and_save(&mut self) -> Result<()> {
        if self.writer.close_current()? {
            let file = self.writer.files().last().expect("a file was just closed");
            self.state.files.push(CheckpointFile::new(file));
        }
        let handle = self.writer.handle().clone();
        self.ledger.save(self.index, &self.state, &handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_follow_threads_cores_input_and_sources() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Asked for: as many as there are sources to give them.
        assert_eq!(lane_count(Some(3), None, 4), 3);
        assert_eq!(lane_count(Some(8), None, 4), 4);
        assert_eq!(lane_count(Some(8), None, 0), 1);
        // Picked: half the cores, one per 64 MiB of input at most, at least one.
        assert_eq!(lane_count(None, None, 1024), (cores / 2).max(1));
        assert_eq!(lane_count(None, Some(1 << 20), 1024), 1);
        assert_eq!(lane_count(None, Some(0), 1024), 1);
        let big = 1024 * LANE_INPUT_BYTES;
        assert_eq!(lane_count(None, Some(big), 1024), (cores / 2).max(1));
        assert_eq!(lane_count(None, Some(big), 1), 1);
    }
}
