//! The producer of runs that read files instead of the table: an export's data files
//! (`convert-export`, `snapshot --mode export`) and the merge of `apply`. Its readers run on
//! blocking threads; each numbers its pages by the items of its source read so far
//! ([`Position::Lines`]), so `--resume` makes readers for what is left and skips that many.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Checkpoint, Position};
use crate::convert::TableShape;
use crate::error::{Error, Result};
use crate::sink::{CHECKPOINT_FILE, Target};
use crate::source::scan::PageSink;
use crate::throttle::ReadBudget;

use super::driver::{Producer, Reading};
use super::resume::Origin;

/// Sends pages of items to the conversion lanes, on a blocking thread; stops early when the
/// flag is set (another reader failed, or Ctrl-C).
pub(super) type Reader =
    Box<dyn FnOnce(&Handle, &PageSink, &AtomicBool) -> Result<()> + Send + 'static>;

/// Makes the readers for what the checkpoint's positions leave (everything on a first run,
/// the rest on `--resume`), given the number of lanes.
pub(super) type MakeReaders =
    Box<dyn FnOnce(&[Position], usize) -> Result<Vec<Reader>> + Send + 'static>;

/// File sources read by blocking readers.
pub(super) struct Files {
    origin: Origin,
    /// How many sources the readers number their pages by (a resume must find as many).
    parts: u32,
    /// The columns that come first in the schema (the keys, then a change log's own).
    first_columns: Vec<String>,
    /// Items in the sources, when known.
    items: Option<u64>,
    make: Option<MakeReaders>,
    readers: Vec<Reader>,
}

/// The size of an item, as far as the number of lanes goes, when only the count is known.
const ITEM_BYTES_GUESS: u64 = 1024;

impl Files {
    /// `parts` sources of `origin` holding about `items` items, read by the readers `make`
    /// makes; `first_columns` come first in the schema.
    pub(super) fn new(
        origin: Origin,
        (parts, items): (u32, Option<u64>),
        first_columns: Vec<String>,
        make: MakeReaders,
    ) -> Self {
        Files {
            origin,
            parts,
            first_columns,
            items,
            make: Some(make),
            readers: Vec::new(),
        }
    }
}

impl Producer for Files {
    fn origin(&self) -> Origin {
        self.origin.clone()
    }

    fn parts(&self) -> (u32, TableShape) {
        let first = self.first_columns.iter().map(String::as_str);
        (self.parts, TableShape::with_key_names(first))
    }

    fn fixed_parts(&self) -> bool {
        true
    }

    fn input_bytes(&self) -> Option<u64> {
        self.items.map(|n| n.saturating_mul(ITEM_BYTES_GUESS))
    }

    fn prepare(&mut self, checkpoint: &Checkpoint, lanes: usize, _: &Target) -> Result<Reading> {
        let make = self
            .make
            .take()
            .ok_or_else(|| Error::Internal("file readers made twice".into()))?;
        self.readers = make(&checkpoint.positions, lanes)?;
        Ok(Reading {
            concurrency: self.readers.len().max(1) as u32,
            budget: ReadBudget::none(),
            estimated_items: self.items,
            time: None,
            expiry: None,
            throttle: None,
            report_pages: true,
        })
    }

    async fn read(self, tx: PageSink, cancel: CancellationToken, url: String) -> Option<Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut running = JoinSet::new();
        for reader in self.readers {
            let (tx, stop) = (tx.clone(), Arc::clone(&stop));
            let handle = Handle::current();
            running.spawn_blocking(move || {
                let result = reader(&handle, &tx, &stop);
                if result.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                result
            });
        }
        drop(tx);
        let mut error = None;
        loop {
            let joined = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    stop.store(true, Ordering::SeqCst);
                    error = Some(Error::Interrupted { url });
                    break;
                }
                joined = running.join_next() => match joined {
                    Some(joined) => joined,
                    None => break,
                },
            };
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error.get_or_insert(e);
                }
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    error.get_or_insert(Error::Internal(format!("a reader failed: {e}")));
                }
            }
        }
        // Readers still running (after a Ctrl-C) stop at their next check; then the channel
        // closes and the lanes finish.
        error
    }
}

/// How many items of a file source are already in closed files: `None` when all of them are.
pub(super) fn lines_done(position: &Position) -> Result<Option<u64>> {
    position.lines_done().transpose().map_err(|()| {
        Error::invalid(format!(
            "{CHECKPOINT_FILE} holds a position that is not a line count; it was not written \
             by this conversion: start over with --overwrite"
        ))
    })
}
