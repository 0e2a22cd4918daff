//! Compaction: the small files of the table's current version rewritten into files of the
//! target size, so a table fed small change sets keeps few files.
//! - **Auto compaction**: a MERGE that finds [`AUTO_COMPACT_FILES`] or more small files folds
//!   them into the files it rewrites anyway, in the same commit (their rows are copied with the
//!   rows of the files holding changed keys, into files of the target size).
//! - **`ddbsnap optimize`**: one commit (`OPTIMIZE`, `dataChange: false`) that removes the small
//!   files (with `--cluster`, every file) and adds their rows sorted by key (see
//!   [`crate::sink::sort`]) in files of the target size, written into a folder of its own
//!   (`optimize=<utc-time>-<random>/`): each new file holds one key range, which its
//!   statistics describe, so readers skip the files a key cannot be in. It carries the table's
//!   latest ddbsnap record, so the newest commit always has it (see [`super::log`]).
//!
//! Memory holds [`SORT_CHUNK_ROWS`] items being sorted, then one batch per sorted run: it does
//! not grow with the number or size of the files compacted.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::rewrite::{in_table_order, open_at};
use super::table::{Attempt, Commit, Delta, TableFile, on_table, table_error, upkeep_after};
use crate::convert::arrow_schema_with_keys;
use crate::error::Result;
use crate::progress::Progress;
use crate::sink::Target;
use crate::sink::physical::PhysicalNames;
use crate::sink::reader::FileItems;
use crate::sink::sort::KeySorter;
use crate::sink::writer::{RollingWriter, WriterOptions};

/// Items a compaction sorts in memory at a time (the rest wait in sorted runs on storage).
const SORT_CHUNK_ROWS: usize = 50_000;

/// Small files at which a MERGE folds them into its rewrite.
pub(super) const AUTO_COMPACT_FILES: usize = 16;

/// True when `file` is small for files of `target` bytes: under three quarters of it. The
/// files ddbsnap rolls reach the target, so only a writer's last file is small (and files
/// other engines wrote).
pub(super) fn is_small(file: &TableFile, target: usize) -> bool {
    (file.size.max(0) as u128) * 4 < (target as u128) * 3
}

/// The small files of `live` that a MERGE rewriting `touched` also rewrites: every small one
/// it does not rewrite anyway, once the small files number [`AUTO_COMPACT_FILES`] or more.
pub(super) fn folded_in(
    live: &[TableFile],
    touched: &HashSet<&str>,
    target: usize,
) -> Vec<TableFile> {
    let small = live.iter().filter(|f| is_small(f, target));
    if small.clone().count() < AUTO_COMPACT_FILES {
        return Vec::new();
    }
    small
        .filter(|f| !touched.contains(f.path.as_str()))
        .cloned()
        .collect()
}

/// What `ddbsnap optimize` did to a Delta table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Compaction {
    /// The table.
    pub table: String,
    /// The version the compaction committed; `None` when there was nothing to compact.
    pub version: Option<u64>,
    /// Live files before and after.
    pub files_before: usize,
    /// Live files after the compaction.
    pub files_after: usize,
    /// Small files removed (their rows rewritten).
    pub files_removed: usize,
    /// Files added.
    pub files_added: usize,
    /// Rows rewritten.
    pub rows: u64,
    /// Size of the files removed.
    pub bytes_removed: u64,
    /// Size of the files added.
    pub bytes_added: u64,
    /// A log checkpoint of the new version was written.
    pub log_checkpoint: bool,
    /// Seconds the compaction took.
    pub seconds: f64,
}

/// Compact the small files of the Delta table at `table` into files of `target` bytes (see
/// the module documentation).
pub(crate) async fn optimize(
    table: &Target,
    target: usize,
    cluster: bool,
    progress: Arc<dyn Progress>,
) -> Result<Compaction> {
    let started = std::time::Instant::now();
    let mut done = on_table(table, move |delta| {
        compact(delta, target, cluster, progress)
    })
    .await?;
    done.seconds = started.elapsed().as_secs_f64();
    Ok(done)
}

fn compact(
    delta: &Delta<'_>,
    target: usize,
    cluster: bool,
    progress: Arc<dyn Progress>,
) -> Result<Compaction> {
    let live: Vec<TableFile> = delta
        .files()?
        .into_iter()
        .flat_map(|b| b.files.into_iter().flatten())
        .collect();
    let mut small: Vec<TableFile> = live
        .iter()
        .filter(|f| cluster || is_small(f, target))
        .cloned()
        .collect();
    small.sort_by(|a, b| a.path.cmp(&b.path));
    let mut summary = Compaction {
        table: delta.table.url().to_owned(),
        version: None,
        files_before: live.len(),
        files_after: live.len(),
        files_removed: 0,
        files_added: 0,
        rows: 0,
        bytes_removed: 0,
        bytes_added: 0,
        log_checkpoint: false,
        seconds: 0.0,
    };
    if small.len() < if cluster { 1 } else { 2 } {
        return Ok(summary);
    }
    delta.writable()?;
    let not_ours = || {
        table_error(
            delta.table,
            "compacting",
            "the table has no ddbsnap record of its schema and keys (it was not made by \
             ddbsnap); compact it with the engine that made it",
        )
    };
    let record = delta.record()?.ok_or_else(not_ours)?;
    let shape = record.shape.clone().ok_or_else(not_ours)?;
    let (name, keys) = delta.source()?.ok_or_else(not_ours)?;
    let key_names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    let columns = in_table_order(shape.resolve(record.options.numbers), &delta.schema());
    let arrow = arrow_schema_with_keys(&columns, &key_names);
    let mapping = delta.mapping()?.map(|m| m.extended(&arrow));

    let folder_name = format!(
        "optimize={}-{:04x}",
        chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ"),
        fastrand::u16(..)
    );
    let source = Source {
        name: &name,
        keys: &keys,
        key_names: &key_names,
        columns: &columns,
        physical: mapping.as_ref().map(|m| &m.names),
    };
    let added = sorted(
        delta,
        &small,
        &delta.table.child(&folder_name),
        &source,
        target,
        &progress,
    )?;
    summary.rows = added.iter().map(|f| f.rows).sum();
    summary.files_removed = small.len();
    summary.files_added = added.len();
    summary.bytes_removed = small.iter().map(|f| f.size.max(0) as u64).sum();
    summary.bytes_added = added.iter().map(|f| f.bytes).sum();
    let metrics = vec![
        ("numRemovedFiles", summary.files_removed.to_string()),
        ("numAddedFiles", summary.files_added.to_string()),
        ("numRemovedBytes", summary.bytes_removed.to_string()),
        ("numAddedBytes", summary.bytes_added.to_string()),
    ];
    let commit = Commit::compaction(&folder_name, record.text.clone(), &arrow, &added, metrics)?
        .mapped(mapping.as_ref(), &arrow)?;
    let removed: HashSet<&str> = small.iter().map(|f| f.path.as_str()).collect();
    let mut done = match delta.try_commit(&commit, &|path| removed.contains(path))? {
        Attempt::Done(done) => done,
        Attempt::Conflict(version) => {
            return Err(table_error(
                delta.table,
                "compacting",
                format!(
                    "another writer committed version {version} while the compaction was \
                     under way; nothing was committed (its files stay for vacuum): run optimize \
                     again"
                ),
            ));
        }
    };
    upkeep_after(delta, &mut done, progress.as_ref());
    summary.version = Some(done.version);
    summary.files_after = live.len() - summary.files_removed + summary.files_added;
    summary.log_checkpoint = done.log_checkpoint;
    Ok(summary)
}

/// What the rewritten files hold: the DynamoDB table, its keys and the table's columns.
struct Source<'a> {
    name: &'a str,
    keys: &'a [crate::table::KeyAttribute],
    key_names: &'a [String],
    columns: &'a crate::convert::Columns,
    /// The table's physical column names, when it maps columns.
    physical: Option<&'a PhysicalNames>,
}

/// Rewrite the rows of `files` sorted by key into files of `target` bytes in `folder`.
fn sorted(
    delta: &Delta<'_>,
    files: &[TableFile],
    folder: &Target,
    source: &Source<'_>,
    target: usize,
    progress: &Arc<dyn Progress>,
) -> Result<Vec<crate::sink::DataFile>> {
    // The sorted runs are scratch, under column names; the table's files under its own.
    let writer = |to: Target, size, table_file: bool| -> Result<RollingWriter> {
        let options = WriterOptions {
            physical: source
                .physical
                .filter(|_| table_file)
                .cloned()
                .map(Arc::new),
            ..WriterOptions::rewriting(source.name, source.keys, size, table_file)?
        };
        Ok(RollingWriter::new(
            to,
            delta.handle.clone(),
            options,
            Arc::clone(progress),
            0,
        ))
    };
    let runs = writer(folder.child("sort"), usize::MAX, false)?;
    let mut sorter = KeySorter::new(runs, source.key_names, source.columns, SORT_CHUNK_ROWS);
    for file in files {
        let (at, file_name) = open_at(delta.table, file)?;
        let open =
            FileItems::open_with(&at, &file_name, None, Some(source.columns), source.physical);
        let mut rows = delta.handle.block_on(open)?;
        while let Some(batch) = delta.handle.block_on(rows.next_batch())? {
            sorter.push(batch)?;
        }
    }
    let mut out = writer(folder.clone(), target, true)?;
    sorter.finish(&mut out)?;
    out.finish()
}
