//! Items sorted by primary key within bounded memory: an external merge sort. Items are
//! buffered up to a chunk, each chunk sorted and written as a run (a scratch data file), then
//! the runs are merged, one batch of each in memory, into the output writer, which rolls its
//! files at the target size: each output file then holds one contiguous key range, which file
//! statistics describe exactly (readers skip the files a key cannot be in).
//!
//! Keys order by value as DynamoDB orders them: strings and binary by their bytes, numbers
//! numerically; the partition key first, then the sort key.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aws_sdk_dynamodb::types::AttributeValue as AV;

use super::Target;
use super::reader::FileItems;
use super::writer::RollingWriter;
use crate::convert::number::{Decimal, NumberOrder};
use crate::convert::{Columns, Item};
use crate::error::{Error, Result};

/// One key attribute's value, ordered as DynamoDB orders keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    Missing,
    Number(NumberOrder),
    Bytes(Vec<u8>),
}

/// An item's key, ordered.
type SortKey = Vec<KeyPart>;

fn sort_key(item: &Item, keys: &[String]) -> SortKey {
    keys.iter()
        .map(|k| match item.get(k) {
            Some(AV::S(s)) => KeyPart::Bytes(s.as_bytes().to_vec()),
            Some(AV::B(b)) => KeyPart::Bytes(b.as_ref().to_vec()),
            Some(AV::N(n)) => {
                Decimal::parse(n).map_or(KeyPart::Missing, |d| KeyPart::Number(d.order_key()))
            }
            _ => KeyPart::Missing,
        })
        .collect()
}

/// Sorts items by key into a writer (see the module documentation).
pub(crate) struct KeySorter {
    /// Where the runs are written (a scratch folder, removed at the end).
    scratch: Target,
    /// Writes the runs (rolls never: one file per run).
    runs: RollingWriter,
    keys: Vec<String>,
    columns: Columns,
    chunk: Vec<Item>,
    chunk_rows: usize,
}

impl KeySorter {
    /// A sorter by `keys` of items with the columns `columns`, holding up to `chunk_rows` items
    /// at a time, its runs written by `runs` (a writer into a scratch folder).
    pub(crate) fn new(
        runs: RollingWriter,
        keys: &[String],
        columns: &Columns,
        chunk_rows: usize,
    ) -> Self {
        KeySorter {
            scratch: runs.target().clone(),
            runs,
            keys: keys.to_vec(),
            columns: columns.clone(),
            chunk: Vec::new(),
            chunk_rows: chunk_rows.max(1),
        }
    }

    /// Add `items`.
    pub(crate) fn push(&mut self, items: Vec<Item>) -> Result<()> {
        self.chunk.extend(items);
        if self.chunk.len() >= self.chunk_rows {
            self.spill()?;
        }
        Ok(())
    }

    /// Sort the buffered items and write them as one run.
    fn spill(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.sort_by_cached_key(|item| sort_key(item, &self.keys));
        for batch in chunk.chunks(8192) {
            self.runs.write_items(&self.columns, batch)?;
        }
        self.runs.close_current()?;
        Ok(())
    }

    /// Merge every item, in key order, into `out` (rolling its files at their target size);
    /// the runs are removed.
    pub(crate) fn finish(mut self, out: &mut RollingWriter) -> Result<()> {
        self.spill()?;
        let handle = out.handle().clone();
        let names: Vec<String> = self.runs.files().iter().map(|f| f.path.clone()).collect();
        let mut sources = Vec::with_capacity(names.len());
        for name in &names {
            sources.push(handle.block_on(FileItems::open(&self.scratch, name))?);
        }
        // Per run: its current batch (reversed, to pop from the end).
        let mut batches: Vec<Vec<Item>> = vec![Vec::new(); sources.len()];
        let mut heap = BinaryHeap::new();
        let mut next = |run: usize, batches: &mut Vec<Vec<Item>>| -> Result<Option<Item>> {
            if batches[run].is_empty()
                && let Some(mut batch) = handle.block_on(sources[run].next_batch())?
            {
                batch.reverse();
                batches[run] = batch;
            }
            Ok(batches[run].pop())
        };
        for run in 0..names.len() {
            if let Some(item) = next(run, &mut batches)? {
                heap.push(Reverse((sort_key(&item, &self.keys), run, Wrapped(item))));
            }
        }
        let mut pending = Vec::with_capacity(1024);
        while let Some(Reverse((_, run, Wrapped(item)))) = heap.pop() {
            pending.push(item);
            if pending.len() == 1024 {
                write(out, &self.columns, &mut pending)?;
            }
            if let Some(item) = next(run, &mut batches)? {
                heap.push(Reverse((sort_key(&item, &self.keys), run, Wrapped(item))));
            }
        }
        write(out, &self.columns, &mut pending)?;
        for name in &names {
            handle
                .block_on(self.scratch.delete(&self.scratch.path(name)))
                .map_err(|e| Error::Internal(format!("removing a sort run: {e}")))?;
        }
        Ok(())
    }
}

fn write(out: &mut RollingWriter, columns: &Columns, pending: &mut Vec<Item>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    out.write_items(columns, pending)?;
    pending.clear();
    if out.roll_due(None) {
        out.close_current()?;
    }
    Ok(())
}

/// An item in the merge heap: never compared (the key and run number before it decide).
struct Wrapped(Item);

impl PartialEq for Wrapped {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Wrapped {}
impl PartialOrd for Wrapped {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wrapped {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
