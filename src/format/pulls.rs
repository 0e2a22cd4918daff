//! A folder of pulls keeps one schema: readers that take the whole folder (pandas, polars)
//! read every run with the schema of one file, so a run that brings a new attribute or a
//! wider number type re-encodes the earlier runs' files to it when it is committed.
//!
//! The latest committed run's shape covers every earlier run (each commit widens the folder
//! to its shape), so a run reads one manifest to find the folder's schema, and every
//! manifest only when the schema widens. Each earlier file is re-encoded under its own name in
//! its run's `_staging/` folder and then moved over the old one, so a reader sees either
//! file, never both, and a stopped commit redoes the runs whose manifest still has the old
//! schema.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use tokio::runtime::Handle;

use super::publish::FinishedRun;
use crate::convert::{Columns, NumberMode, TableShape};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestSchema};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::reader::{read_manifest, write_manifest};
use crate::sink::rewrite::reencode;
use crate::sink::writer::{RollingWriter, WriterOptions};
use crate::sink::{DataFile, Target, staged_name};

/// The shape the run in the folder `run` of a folder of pulls is written with: the latest
/// committed run's widened by the run's own `shape`. Runs whose numbers were stored otherwise
/// (`--numbers`) are never widened into (float64 would round exact numbers).
pub(super) async fn shape(
    run: &Target,
    shape: &TableShape,
    numbers: NumberMode,
) -> Result<TableShape> {
    let Some((root, _)) = run.split_parent() else {
        return Ok(shape.clone());
    };
    match latest_run(&root).await? {
        Some((_, latest)) if latest.options.numbers == numbers => {
            let mut widened = latest.schema.shape();
            widened.merge(shape);
            Ok(widened)
        }
        _ => Ok(shape.clone()),
    }
}

/// Re-encode every committed run of the folder of pulls that holds `run` whose schema is not
/// the run's own (and whose numbers are stored alike). Returns how many files were rewritten.
pub(super) async fn widen_earlier_runs(run: &FinishedRun<'_>) -> Result<usize> {
    let Some((root, _)) = run.target.split_parent() else {
        return Ok(0);
    };
    let schema = &run.manifest.schema;
    let latest = latest_run(&root).await?;
    if latest.is_none_or(|(_, m)| m.schema.columns == schema.columns) {
        // The latest run has this schema, and so has every run before it.
        return Ok(0);
    }
    let mut rewritten = 0;
    for earlier in root.runs().await? {
        // The run itself is not committed yet.
        if !earlier.committed {
            continue;
        }
        let folder = root.child(&earlier.name);
        let manifest = read_manifest(&folder).await?;
        if manifest.schema.columns == schema.columns
            || manifest.options.numbers != run.manifest.options.numbers
        {
            continue;
        }
        run.progress.event(&ProgressEvent::Rewriting {
            files: manifest.files.len(),
        });
        rewritten += manifest.files.len();
        reencode_run(&folder, manifest, schema, &run.writer, run.progress).await?;
    }
    Ok(rewritten)
}

/// Re-encode every file of the committed run in `folder` to `schema`, each under its own name,
/// then record the new schema and sizes in its manifest.
async fn reencode_run(
    folder: &Target,
    mut manifest: Manifest,
    schema: &ManifestSchema,
    writer: &WriterOptions,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let mut files = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        files.push(reencode_file(folder, file, &schema.columns, writer, progress).await?);
    }
    manifest.files = files;
    manifest.schema = schema.clone();
    write_manifest(folder, &manifest).await
}

/// Re-encode `file` of `folder` to `columns` in `_staging/`, then move it over the old one.
async fn reencode_file(
    folder: &Target,
    file: &DataFile,
    columns: &Columns,
    writer: &WriterOptions,
    progress: &Arc<dyn Progress>,
) -> Result<DataFile> {
    let staged = staged_name(&file.path);
    let writer = RollingWriter::new(
        folder.clone(),
        Handle::current(),
        writer.clone(),
        Arc::clone(progress),
        0,
    )
    .named(staged.clone());
    let (source, from, columns) = (folder.clone(), file.path.clone(), columns.clone());
    let written = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        reencode(&mut writer, &source, &from, &columns)?;
        writer.finish()
    })
    .await
    .map_err(|e| Error::Internal(format!("re-encoding thread failed: {e}")))??;
    let mut written = written
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal(format!("re-encoding {} wrote no file", file.path)))?;
    folder
        .store
        .rename(&folder.path(&staged), &folder.path(&file.path))
        .await
        .map_err(|e| {
            folder.error(
                &format!("moving the re-encoded {} into place", file.path),
                e,
            )
        })?;
    written.path.clone_from(&file.path);
    Ok(written)
}

/// The latest committed run under the dataset root `root`, with its manifest.
pub(crate) async fn latest_run(root: &Target) -> Result<Option<(String, Manifest)>> {
    let runs = root.runs().await?;
    let Some(run) = runs.into_iter().rev().find(|r| r.committed) else {
        return Ok(None);
    };
    let manifest = read_manifest(&root.child(&run.name)).await?;
    Ok(Some((run.name, manifest)))
}
