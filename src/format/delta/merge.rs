//! MERGE: a run's change set applied to a Delta table by primary key, copy on write.
//!
//! The run (a timestamp pull, a converted incremental export) has written its rows into its
//! folder like any run. Publishing it then:
//! 1. reads the change set back, the latest change per key ([`ChangeSet`]);
//! 2. starts the schema from the table's inferred shape (recorded by the last ddbsnap commit)
//!    widened by the run's, so a change set never narrows a column; a column whose type
//!    widens makes every file a rewrite, as a full refresh would;
//! 3. reads only the key columns of each live file, to find the files holding a changed or
//!    deleted key;
//! 4. rewrites those files without their changed rows, then writes the new images (in key
//!    order) to new files, in the run's folder;
//! 5. commits one version removing the rewritten files and adding the new ones. The change
//!    set's own files were never part of the table; the run deletes them once its checkpoint
//!    is gone (until then a resume needs them to find its commit).
//!
//! Memory holds the change set (one row per changed key); the table's files are streamed.
//! Files no changed key falls in are neither read past their key columns nor rewritten.

use std::collections::HashSet;
use std::sync::Arc;

use super::compact::folded_in;
use super::concurrency::{ChangedKeys, Prepared, holds_any};
use super::mapping::Mapping;
use super::rewrite::{Rewrite, in_table_order};
use super::table::{Commit, Delta, Run, TableFile, additions};
use crate::changes::ChangeSet;
use crate::convert::TableShape;
use crate::convert::arrow_schema_with_keys;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::progress::ProgressEvent;
use crate::sink::physical::PhysicalNames;
use crate::sink::writer::RollingWriter;
use crate::source::export::CHANGE_COLUMNS;
use arrow_schema::Schema;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::schema::StructType;
use tokio::runtime::Handle;

/// The column a table of changes is keyed by: the record's sequence number.
pub(super) const LOG_KEY: &str = "_seq";

/// What kind of change set a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeKind {
    /// New images of changed items (a timestamp pull): upserts only.
    Upserts,
    /// A change log (a converted incremental export): upserts and deletes.
    ChangeLog,
    /// A stream's change log kept as data (`sync --changes`): every row appended as it is,
    /// keyed by its sequence number (`_seq`); no file is rewritten for it.
    Log,
}

impl ChangeKind {
    /// The kind of change set the run of `manifest` is; `None` for a whole table's items.
    pub(super) fn of(manifest: &Manifest) -> Option<Self> {
        // A stream run is a change log even when it read no record (and has no `_op`).
        if manifest.mode == crate::mode::RunMode::Stream
            || manifest.schema.columns.contains_key("_op")
            || manifest.export.as_ref().is_some_and(|e| e.is_incremental())
        {
            Some(ChangeKind::ChangeLog)
        } else if manifest.watermark.is_some() {
            Some(ChangeKind::Upserts)
        } else {
            None
        }
    }
}

/// The key attributes a MERGE of `run` goes by: the run's, else the table's (what it was
/// created with).
fn merge_keys(delta: &Delta<'_>, run: &Run, kind: ChangeKind) -> Result<Vec<String>> {
    if kind == ChangeKind::Log {
        return Ok(vec![LOG_KEY.to_owned()]);
    }
    let mut keys: Vec<String> = run
        .manifest
        .table
        .key_schema
        .iter()
        .map(|k| k.name.clone())
        .collect();
    if keys.is_empty() {
        keys = (delta.source()?.map(|(_, keys)| keys).unwrap_or_default())
            .into_iter()
            .map(|k| k.name)
            .collect();
    }
    if keys.is_empty() {
        return Err(Error::invalid(
            "neither the run nor the Delta table records the key attributes to merge by; give \
             them with --key PK[,SK]",
        ));
    }
    Ok(keys)
}

/// The commit that applies `run`'s change set to the table at `delta`'s version (see the
/// module documentation): its new files are written, the commit is not yet put.
pub(super) fn prepare(delta: &Delta<'_>, run: &Run, kind: ChangeKind) -> Result<Prepared> {
    let handle = delta.handle;
    let keys = merge_keys(delta, run, kind)?;
    let Some(mut shape) = delta.record()?.and_then(|r| r.shape) else {
        return Err(Error::Destination {
            url: delta.table.url().to_owned(),
            message: "the Delta log has no ddbsnap record of the table's schema (the table was \
                      made by another writer, or its log was cleaned up since ddbsnap last \
                      wrote it); refresh the whole table once with ddbsnap, then merge"
                .into(),
            source: None,
        });
    };
    let run_shape = match kind {
        ChangeKind::Upserts | ChangeKind::Log => run.shape.clone(),
        ChangeKind::ChangeLog => run.shape.clone().without(&CHANGE_COLUMNS),
    };
    shape.merge(&run_shape);
    let columns = in_table_order(shape.resolve(run.manifest.options.numbers), &delta.schema());
    let arrow = arrow_schema_with_keys(&columns, &keys);
    let mapping = delta.mapping()?.map(|m| m.extended(&arrow));
    let schema = match &mapping {
        Some(mapping) => mapping.schema(&arrow)?,
        None => StructType::try_from_arrow(arrow.as_ref()).map_err(|e| {
            Error::Internal(format!("the table's schema has no Delta equivalent: {e}"))
        })?,
    };
    let rewrite_all = additions(&delta.schema(), &schema, None).is_err();
    let physical = mapping.as_ref().map(|m| m.names.clone());

    let changes = match kind {
        ChangeKind::Log => ChangeSet::read_log(&run.source, &run.manifest.files, &keys, handle)?,
        _ => ChangeSet::read(&run.source, &run.manifest.files, &keys, handle)?,
    };
    let changed = ChangedKeys {
        names: keys.clone(),
        columns: columns.clone(),
        keys: changes.keys(),
        physical: physical.clone(),
    };
    // Appended rows have keys of their own: no file holds them.
    let may_hold = kind != ChangeKind::Log && !changes.is_empty();
    let (touched, files_compacted) =
        touched(delta, run, rewrite_all, may_hold.then_some(&changed))?;
    run.progress.event(&ProgressEvent::Rewriting {
        files: touched.len(),
    });
    let writer = writer_of(run, physical.as_ref(), handle);
    let rewrite = Rewrite {
        table: delta.table,
        keys: &keys,
        columns: &columns,
        physical: physical.as_ref(),
        handle,
    };
    let (added, mut stats) = rewrite.run(writer, &touched, changes)?;
    stats.files_compacted = files_compacted;
    stats.bytes_rewritten = touched.iter().map(|f| f.size.max(0) as u64).sum();
    stats.bytes_added = added.iter().map(|f| f.bytes).sum();
    if kind == ChangeKind::Log {
        return Ok(Prepared {
            commit: appended(
                run,
                (&arrow, &shape, mapping.as_ref()),
                &added,
                touched.len(),
            )?,
            removes: Some(touched.into_iter().map(|f| f.path).collect()),
            changed: Some(changed),
        });
    }
    let metrics = vec![
        ("numTargetRowsInserted", stats.rows_inserted.to_string()),
        ("numTargetRowsUpdated", stats.rows_updated.to_string()),
        ("numTargetRowsDeleted", stats.rows_deleted.to_string()),
        ("numTargetRowsCopied", stats.rows_copied.to_string()),
        ("numTargetFilesRemoved", touched.len().to_string()),
        ("numTargetFilesAdded", added.len().to_string()),
        ("numTargetBytesRemoved", stats.bytes_rewritten.to_string()),
        ("numTargetBytesAdded", stats.bytes_added.to_string()),
        (
            "numSourceRows",
            run.manifest.totals.items_written.to_string(),
        ),
    ];
    Ok(Prepared {
        commit: Commit::new(run, &arrow, &added, &shape, metrics)?
            .mapped(mapping.as_ref(), &arrow)?
            .merged(stats),
        removes: Some(touched.into_iter().map(|f| f.path).collect()),
        changed: Some(changed),
    })
}

/// The live files of the table at `delta` a MERGE of `run` rewrites: all of them when
/// `rewrite_all`, else those holding a key of `changed` (when given), and the small files it
/// folds in (counted apart).
fn touched(
    delta: &Delta<'_>,
    run: &Run,
    rewrite_all: bool,
    changed: Option<&ChangedKeys>,
) -> Result<(Vec<TableFile>, u64)> {
    let live: Vec<TableFile> = delta
        .files()?
        .into_iter()
        .flat_map(|b| b.files.into_iter().flatten())
        .collect();
    let mut touched = Vec::new();
    for file in &live {
        let holds = |changed| holds_any(delta, file, changed);
        if rewrite_all || changed.map(holds).transpose()?.unwrap_or(false) {
            touched.push(file.clone());
        }
    }
    let folded = {
        let paths: HashSet<&str> = touched.iter().map(|f| f.path.as_str()).collect();
        folded_in(&live, &paths, run.writer.target_file_bytes)
    };
    let files_compacted = folded.len() as u64;
    touched.extend(folded);
    Ok((touched, files_compacted))
}

/// The writer of the files a MERGE of `run` adds, in the run's folder (under the table's
/// `physical` column names, when it maps columns).
fn writer_of(run: &Run, physical: Option<&PhysicalNames>, handle: &Handle) -> RollingWriter {
    let first_index =
        crate::sink::next_data_file_index(run.manifest.files.iter().map(|f| f.path.as_str()));
    RollingWriter::new(
        run.folder.clone(),
        handle.clone(),
        crate::sink::writer::WriterOptions {
            physical: physical.cloned().map(Arc::new),
            ..run.writer.clone()
        },
        Arc::clone(&run.progress),
        first_index,
    )
}

/// The commit that creates a table of changes (with the column `mapping` the run asks for):
/// `run`'s rows written to its folder as they are.
pub(super) fn first_log(run: &Run, mapping: Option<&Mapping>, handle: &Handle) -> Result<Commit> {
    let keys = [LOG_KEY.to_owned()];
    let columns = run.shape.resolve(run.manifest.options.numbers);
    let arrow = arrow_schema_with_keys(&columns, &keys);
    let mapping = mapping.map(|m| m.extended(&arrow));
    let physical = mapping.as_ref().map(|m| m.names.clone());
    let changes = ChangeSet::read_log(&run.source, &run.manifest.files, &keys, handle)?;
    let rewrite = Rewrite {
        table: &run.folder,
        keys: &keys,
        columns: &columns,
        physical: physical.as_ref(),
        handle,
    };
    let writer = writer_of(run, physical.as_ref(), handle);
    let (added, _) = rewrite.run(writer, &[], changes)?;
    appended(run, (&arrow, &run.shape, mapping.as_ref()), &added, 0)
}

/// The commit of a table of changes that appends `run`'s rows as the files `added` (schema
/// `arrow`, the table's shape now `shape`, its column `mapping`), removing `removed` files
/// whose rows they carry over (small ones folded in, or all of them when a column's type
/// widened).
fn appended(
    run: &Run,
    (arrow, shape, mapping): (&Schema, &TableShape, Option<&Mapping>),
    added: &[crate::sink::DataFile],
    removed: usize,
) -> Result<Commit> {
    let bytes: u64 = added.iter().map(|f| f.bytes).sum();
    let rows: u64 = added.iter().map(|f| f.rows).sum();
    let metrics = vec![
        ("numFiles", added.len().to_string()),
        ("numOutputRows", rows.to_string()),
        ("numOutputBytes", bytes.to_string()),
        ("numRemovedFiles", removed.to_string()),
    ];
    Commit::new(run, arrow, added, shape, metrics)?.mapped(mapping, arrow)
}
