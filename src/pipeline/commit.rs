//! The commit: a finished run's files brought to one schema, then published once, as a
//! snapshot's `_manifest.json` or as the next version of a Delta table.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Checkpoint, CheckpointFile, next_file_index, write_checkpoint};
use crate::convert::{Columns, TableShape, arrow_schema_with_keys};
use crate::error::{Error, Result};
use crate::format::{FinishedRun, Published};
use crate::manifest::{MANIFEST_FORMAT, Manifest, ManifestSchema, Watermark};
use crate::mode::RunMode;
use crate::progress::{Progress, ProgressEvent};
use crate::sink::rewrite::reencode;
use crate::sink::writer::{RollingWriter, WriterOptions, file_path};
use crate::sink::{DataFile, Target, published_name};

use super::commit_plan::{CommitPlan, key_columns};
use super::summary::Summary;

/// Bring every file to the final schema, then publish the run as `plan` says (write the
/// manifest, or commit a Delta version) and drop the checkpoint.
pub(super) async fn commit(
    plan: CommitPlan,
    target: &Target,
    progress: &Arc<dyn Progress>,
    cancel: &CancellationToken,
    checkpoint: &mut Checkpoint,
    started: Instant,
) -> Result<Summary> {
    let writer_opts = plan.writer_options(&checkpoint.options)?;
    let numbers = checkpoint.options.numbers;
    let publisher = plan.format.publisher();
    let shape = publisher
        .shape(target, &checkpoint.shape, numbers, plan.pulls)
        .await?;
    let columns = shape.resolve(numbers);
    let files_rewritten = unify(target, progress, checkpoint, &writer_opts, &columns).await?;
    let mut manifest = manifest_of(&plan, checkpoint, (columns, shape));
    // What the table holds after this run: the plan's word, else the run's own record.
    manifest.coverage = plan.coverage.clone().or_else(|| manifest.coverage());
    if cancel.is_cancelled() {
        return Err(Error::Interrupted {
            url: target.url.clone(),
        });
    }
    progress.event(&ProgressEvent::Committing {
        files: manifest.files.len(),
    });
    let run = FinishedRun {
        target,
        manifest: &manifest,
        shape: &checkpoint.shape,
        writer: writer_opts,
        progress,
        pulls: plan.pulls,
    };
    // The table of changes first: once the run is published nothing resumes it, and a
    // run it already holds is not appended again (see docs/streams.md).
    let changes = match &plan.changes {
        Some(table) => crate::format::delta::append_changes(table, &run).await?,
        None => None,
    };
    let Published {
        url,
        delta,
        rewritten,
    } = publisher.publish(run).await?;
    // Committed. A checkpoint left next to a manifest is ignored (and removed by --overwrite),
    // and a Delta run's own commit is found again by --resume, so failing to delete it must
    // not fail the run.
    let _ = target.delete(&target.path(&target.checkpoint_name())).await;
    publisher.tidy(target, &manifest).await;
    progress.event(&ProgressEvent::Committed { url: url.clone() });
    let columns_not_found = plan
        .columns
        .iter()
        .filter(|c| !manifest.schema.columns.contains_key(c.as_str()))
        .cloned()
        .collect();
    Ok(Summary {
        url,
        concurrency: plan.concurrency,
        files_rewritten: files_rewritten + rewritten,
        columns_not_found,
        delta,
        changes,
        seconds: started.elapsed().as_secs_f64(),
        ..Summary::of_manifest(target, &manifest, false)
    })
}

/// Re-encode the files written with another schema than the final `columns` (the schema
/// widened after them), name the new files in the checkpoint, then delete the old ones.
/// Returns how many were rewritten.
async fn unify(
    target: &Target,
    progress: &Arc<dyn Progress>,
    checkpoint: &mut Checkpoint,
    writer_opts: &WriterOptions,
    columns: &Columns,
) -> Result<usize> {
    let stale: Vec<DataFile> = checkpoint
        .files
        .iter()
        .filter(|f| f.columns != *columns)
        .map(CheckpointFile::data_file)
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    {
        progress.event(&ProgressEvent::Rewriting { files: stale.len() });
        let rewriter = RollingWriter::new(
            target.clone(),
            Handle::current(),
            writer_opts.clone(),
            Arc::clone(progress),
            next_file_index(&checkpoint.files),
        );
        let cols = columns.clone();
        let stale_files = stale.clone();
        let rewritten = tokio::task::spawn_blocking(move || rewrite(rewriter, &stale_files, &cols))
            .await
            .map_err(|e| Error::Internal(format!("rewrite thread failed: {e}")))??;
        // The checkpoint names the new files before the old ones go: a run killed in between
        // resumes with the new files (and deletes the old), one killed before redoes this.
        checkpoint.files.retain(|f| f.columns == *columns);
        checkpoint
            .files
            .extend(rewritten.iter().map(CheckpointFile::new));
        checkpoint.updated_at = Utc::now();
        write_checkpoint(target, checkpoint).await?;
        for f in &stale {
            target.delete(&file_path(target, f)).await?;
        }
    }
    Ok(stale.len())
}

/// The manifest of the run `checkpoint` holds, published as `plan` says, its files all
/// written with `columns`, inferred as `shape`.
fn manifest_of(
    plan: &CommitPlan,
    checkpoint: &Checkpoint,
    (columns, shape): (Columns, TableShape),
) -> Manifest {
    // Under the names the commit moves them to.
    let mut files: Vec<DataFile> = checkpoint
        .files
        .iter()
        .map(|f| DataFile {
            path: published_name(&f.file.path).to_owned(),
            ..f.data_file()
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        ddbsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        region: plan.region.clone(),
        mode: checkpoint.mode,
        filter: checkpoint.filter.clone(),
        started_at: checkpoint.started_at,
        finished_at: Utc::now(),
        segments: checkpoint.segments,
        runs: checkpoint.runs,
        consistent_read: plan.consistent_read,
        totals: checkpoint.totals.clone(),
        read_budget: plan.read_budget.clone(),
        export: plan.export.clone(),
        watermark: plan.time.as_ref().map(|t| Watermark {
            attribute: t.attribute.clone(),
            format: t.format,
            since: t.since,
            until: t.until,
            window_end: t
                .until
                .map_or(checkpoint.started_at, |u| u.min(checkpoint.started_at)),
            stats: checkpoint.window.clone().unwrap_or_default(),
        }),
        coverage: None,
        stream: plan.stream.clone().map(|mut stream| {
            if let Some(crate::checkpoint::Position::Stream { shards }) =
                checkpoint.positions.first()
            {
                stream.shards = shards.clone();
            }
            stream
        }),
        refreshed_at: match (checkpoint.mode, &plan.time) {
            (RunMode::Scan, None) => Some(checkpoint.started_at),
            _ => plan.refreshed_at,
        },
        schema: ManifestSchema {
            arrow: arrow_schema_with_keys(&columns, &key_columns(&plan.table))
                .as_ref()
                .clone(),
            columns,
            inferred: Some(shape),
        },
        options: checkpoint.options.clone(),
        files,
        table: plan.table.clone(),
    }
}

/// Re-encode `stale` files (written with an earlier schema) into `columns`.
fn rewrite(
    mut writer: RollingWriter,
    stale: &[DataFile],
    columns: &Columns,
) -> Result<Vec<DataFile>> {
    let target = writer.target().clone();
    for file in stale {
        reencode(&mut writer, &target, &file.path, columns)?;
    }
    writer.finish()
}
