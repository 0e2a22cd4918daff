//! The commit: a finished run's files brought to one schema, then published once, as a
//! snapshot's `_manifest.json` or as the next version of a Delta table.

use super::*;

/// What publishing a finished run needs besides its checkpoint. A shard keeps it in its
/// record, so `ddbsnap commit` needs neither the run's options nor access to the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitPlan {
    /// The table's region, as the manifest records it.
    pub region: String,
    /// The table (or, for a conversion, what is known of it).
    pub table: TableInfo,
    /// The timestamp window of an incremental pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<crate::filter::TimeFilter>,
    /// The export a conversion read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
    /// The read budget of the whole run (all shards together).
    pub read_budget: ReadBudget,
    /// Segments or readers at once.
    pub concurrency: u32,
    /// How the run is published.
    pub format: TableFormat,
    /// Strongly consistent reads.
    pub consistent_read: bool,
    /// The attributes `--columns` asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Data file, row group and upload part sizes (files re-encoded at the commit).
    pub sizes: FileSizes,
    /// What the published table holds, when the run's mode, window and export do not say it
    /// (`apply`: the change log's window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::window::Coverage>,
}

/// Sizes of the data files a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSizes {
    /// Target data file size.
    pub target_file_bytes: usize,
    /// Row group size.
    pub row_group_bytes: usize,
    /// Upload part size.
    pub part_bytes: usize,
}

impl CommitPlan {
    /// The plan of a run of `config` over `table`, its other parts at their defaults (no time
    /// window, no export, no read budget).
    pub(super) fn new(config: &SnapshotConfig, region: &str, table: TableInfo) -> Self {
        CommitPlan {
            region: region.to_owned(),
            table,
            time: None,
            export: None,
            read_budget: ReadBudget::none(),
            concurrency: 1,
            format: config.format,
            consistent_read: config.consistent_read,
            columns: config.columns.clone(),
            sizes: FileSizes {
                target_file_bytes: config.target_file_bytes,
                row_group_bytes: config.row_group_bytes,
                part_bytes: config.part_bytes,
            },
            coverage: None,
        }
    }

    /// How the run's files are written, with `options` (compression and numbers).
    pub(super) fn writer_options(&self, options: &OutputOptions) -> Result<WriterOptions> {
        Ok(WriterOptions {
            compression: options.compression,
            zstd_level: options
                .zstd_level
                .unwrap_or(crate::config::DEFAULT_ZSTD_LEVEL),
            target_file_bytes: self.sizes.target_file_bytes,
            row_group_bytes: self.sizes.row_group_bytes,
            part_bytes: self.sizes.part_bytes,
            metadata: file_metadata(&self.table)?,
            key_columns: key_columns(&self.table),
        })
    }
}

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
    let columns = checkpoint.shape.resolve(numbers);
    let stale: Vec<DataFile> = checkpoint
        .files
        .iter()
        .filter(|f| f.columns != columns)
        .map(CheckpointFile::data_file)
        .collect();
    let files_rewritten = stale.len();
    if !stale.is_empty() {
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
        checkpoint.files.retain(|f| f.columns == columns);
        checkpoint
            .files
            .extend(rewritten.iter().map(CheckpointFile::new));
        checkpoint.updated_at = Utc::now();
        write_checkpoint(target, checkpoint).await?;
        for f in &stale {
            target.delete(&file_path(target, f)).await?;
        }
    }
    let mut files: Vec<DataFile> = checkpoint
        .files
        .iter()
        .map(CheckpointFile::data_file)
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let totals = &checkpoint.totals;
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        ddbsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        region: plan.region.clone(),
        mode: checkpoint.mode.clone(),
        filter: checkpoint.filter.clone(),
        started_at: checkpoint.started_at,
        finished_at: Utc::now(),
        segments: checkpoint.segments,
        runs: checkpoint.runs,
        consistent_read: plan.consistent_read,
        items_scanned: totals.items_scanned,
        items_written: totals.items_written,
        items_expired: totals.items_expired,
        pages: totals.pages,
        consumed_rcu: totals.consumed_rcu,
        read_budget: plan.read_budget.clone(),
        throttled_requests: totals.throttled_requests,
        retried_requests: totals.retried_requests,
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
        schema: ManifestSchema {
            arrow: arrow_schema_with_keys(&columns, &key_columns(&plan.table))
                .as_ref()
                .clone(),
            columns,
        },
        options: checkpoint.options.clone(),
        files,
        table: plan.table.clone(),
    };
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
    let published = Published {
        format: plan.format,
        shape: &checkpoint.shape,
        writer: writer_opts,
        progress,
    };
    let (url, delta) = published.publish(target, &manifest).await?;
    // Committed. A checkpoint left next to a manifest is ignored (and removed by --overwrite),
    // and a Delta run's own commit is found again by --resume, so failing to delete it must
    // not fail the run.
    let _ = target.delete(&target.path(&target.checkpoint_name())).await;
    if plan.format == TableFormat::Delta && crate::format::delta::is_change_set(&manifest) {
        // A MERGE's change set was never part of the table; once the checkpoint is gone no
        // resume needs it. Left behind by a crash, VACUUM removes it.
        for file in &manifest.files {
            let _ = target.delete(&target.path(&file.path)).await;
        }
    }
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
        files_rewritten,
        columns_not_found,
        delta,
        seconds: started.elapsed().as_secs_f64(),
        ..Summary::of_manifest(target, &manifest, false)
    })
}

/// How a finished run is published, beyond its files and manifest.
struct Published<'a> {
    format: TableFormat,
    /// The run's inferred shape (a Delta MERGE widens the table's by it).
    shape: &'a TableShape,
    /// How a Delta MERGE writes the files it rewrites.
    writer: WriterOptions,
    progress: &'a Arc<dyn Progress>,
}

impl Published<'_> {
    /// Publish the finished run in `target` that `manifest` describes: write `_manifest.json`
    /// into its folder, or commit it as the next version of the Delta table whose `run=`
    /// folder it is. Returns where readers find it.
    async fn publish(
        self,
        target: &Target,
        manifest: &Manifest,
    ) -> Result<(String, Option<DeltaCommit>)> {
        match self.format {
            TableFormat::Snapshot => {
                let body = serde_json::to_vec_pretty(manifest)
                    .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
                target
                    .store
                    .put(&target.path(MANIFEST_FILE), body.into())
                    .await
                    .map_err(|e| target.error("writing _manifest.json", e))?;
                Ok((target.url.clone(), None))
            }
            TableFormat::Delta => {
                let (table, name) = target.split_parent().ok_or_else(|| {
                    Error::Internal("a Delta run is not in a folder of its table".into())
                })?;
                let run = crate::format::delta::Run {
                    folder: target.clone(),
                    name,
                    manifest: manifest.clone(),
                    shape: self.shape.clone(),
                    writer: self.writer,
                    progress: Arc::clone(self.progress),
                };
                let done = crate::format::delta::publish(&table, run).await?;
                Ok((table.url, Some(done)))
            }
        }
    }
}

/// Re-encode `stale` files (written with an earlier schema) into `columns`.
fn rewrite(
    mut writer: RollingWriter,
    stale: &[DataFile],
    columns: &Columns,
) -> Result<Vec<DataFile>> {
    let handle = writer.handle().clone();
    let target = writer.target().clone();
    for file in stale {
        let mut items = handle.block_on(FileItems::open(&target, &file.path))?;
        while let Some(batch) = handle.block_on(items.next_batch())? {
            writer.write_items(columns, &batch)?;
            if writer.roll_due(None) {
                writer.close_current()?;
            }
        }
    }
    writer.finish()
}
