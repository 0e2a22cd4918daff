//! `snapshot --mode export`: DynamoDB's native export started (or found again) and its data
//! files converted; into a Delta table, the export's window admitted first, or for
//! `--incremental --since last` the time since the table's coverage split into windows.

use chrono::Utc;

use crate::aws::AwsContext;
use crate::checkpoint::read_checkpoint;
use crate::config::SnapshotConfig;
use crate::error::{Error, Result};
use crate::format::TableFormat;
use crate::manifest::Manifest;
use crate::mode::RunMode;
use crate::sink::{CHECKPOINT_FILE, Target};
use crate::source::export::{
    Export, ExportRequest, IncrementalRange, IncrementalWindow, earliest_restorable, split_window,
};
use crate::table::TableInfo;
use crate::window::{ChangeWindow, Feed, OnGap, show};

use super::admit::{self, Admitted};
use super::resume::{RunContext, committed};
use super::sources::convert_export_to;
use super::summary::Summary;

/// `snapshot --mode export`: one export and its conversion; for `--incremental --since last`
/// into a Delta table, one per window from where the table is current (split into windows
/// DynamoDB accepts), each merged in order as a new table version. The summary is the last
/// run's, with the items, files and bytes of all of them.
pub(super) async fn export_runs(
    aws: &AwsContext,
    table: TableInfo,
    root: Target,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let config = run.config;
    let request = export_request(config)?;
    let plan = if config.output.format == TableFormat::Delta && !config.run.resume {
        plan_exports(aws, &table, &root, config, request).await?
    } else {
        // One export (or the resumed one, whose export is in its checkpoint).
        ExportPlan::One
    };
    let windows = match plan {
        ExportPlan::One => {
            return export_run(aws, table, root, run).await;
        }
        ExportPlan::AlreadyApplied(note) => {
            return Ok(Summary::already_applied(&root.url, &table, note));
        }
        ExportPlan::Refresh(gap) => {
            // A full export instead, which replaces the Delta table's rows.
            let full = SnapshotConfig {
                export: Some(ExportRequest {
                    incremental: None,
                    export_time: None,
                    ..request.clone()
                }),
                ..config.clone()
            };
            let mut summary = export_run(aws, table, root, &run.with_config(&full)).await?;
            summary.window_note = crate::window::Admission::Refresh(gap).note();
            return Ok(summary);
        }
        ExportPlan::Windows(windows) => windows,
    };
    let mut total: Option<Summary> = None;
    for window in windows {
        let config = SnapshotConfig {
            export: Some(ExportRequest {
                incremental: Some(IncrementalRange::Window(window)),
                ..request.clone()
            }),
            ..config.clone()
        };
        let window = run.with_config(&config).starting_now();
        let done = export_run(aws, table.clone(), root.clone(), &window).await?;
        total = Some(match total {
            None => done,
            Some(before) => Summary {
                items: before.items + done.items,
                items_scanned: before.items_scanned + done.items_scanned,
                files: before.files + done.files,
                bytes: before.bytes + done.bytes,
                ..done
            },
        });
    }
    let mut summary = total.ok_or_else(|| Error::Internal("no export window".into()))?;
    summary.seconds = run.started.0.elapsed().as_secs_f64();
    Ok(summary)
}

/// What `snapshot --mode export` into a Delta table does, decided before any export starts.
enum ExportPlan {
    /// One export, as asked.
    One,
    /// The window asked for is the one the table applied last: nothing to do.
    AlreadyApplied(String),
    /// A full export instead (`--on-gap refresh`), for this gap.
    Refresh(String),
    /// Incremental exports of these windows, in order (`--since last`).
    Windows(Vec<IncrementalWindow>),
}

/// Admit an incremental export's window into the Delta table at `root`, or for `--since
/// last`, split the time from where the table is current into the windows to export. A gap
/// that point-in-time recovery cannot cover is decided by `--on-gap`.
async fn plan_exports(
    aws: &AwsContext,
    table: &TableInfo,
    root: &Target,
    config: &SnapshotConfig,
    request: &ExportRequest,
) -> Result<ExportPlan> {
    let (until, old_images) = match &request.incremental {
        None => return Ok(ExportPlan::One),
        Some(IncrementalRange::Window(w)) => {
            let change = ChangeWindow {
                feed: Feed::Export,
                from: w.from,
                to: w.to,
                id: None,
            };
            return Ok(match admit::into_delta(root, &change, config).await? {
                Admitted::Go(_) => ExportPlan::One,
                Admitted::Done(note) => ExportPlan::AlreadyApplied(note),
                Admitted::Refresh(gap) => ExportPlan::Refresh(gap),
            });
        }
        Some(IncrementalRange::SinceLast { until, old_images }) => (*until, *old_images),
    };
    let publisher = config.output.format.publisher();
    let Some(current) = publisher.continues(root, &Feed::Export).await? else {
        return Err(Error::invalid(format!(
            "--since last: {} has no Delta table to continue; create it from a full export or \
             a full refresh first",
            root.url()
        )));
    };
    let mut from = current.until;
    if let Some(earliest) = earliest_restorable(aws, table).await?
        && from < earliest
    {
        let gap = format!(
            "it holds every change up to {}, but point-in-time recovery of '{}' reaches back \
             to {} only, so no incremental export covers the changes in between",
            show(from),
            table.name,
            show(earliest)
        );
        match config.run.on_gap {
            OnGap::Fail => {
                return Err(Error::OutOfOrder {
                    url: root.url.clone(),
                    message: format!(
                        "{gap}; pass --on-gap refresh (a full export) or --on-gap force \
                         (continue from {})",
                        show(earliest)
                    ),
                });
            }
            OnGap::Refresh => return Ok(ExportPlan::Refresh(gap)),
            OnGap::Force => from = earliest,
        }
    }
    let windows = split_window(from, until.unwrap_or_else(Utc::now), old_images)?;
    Ok(ExportPlan::Windows(windows))
}

/// One export into `root` (its run folder when runs have folders) and its conversion.
async fn export_run(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let config = run.config;
    let request = export_request(config)?;
    let target = crate::plan::run_target(target, config, run.started.1).await?;
    let resumed = if config.run.resume {
        resume_export(&target, &table.name).await?
    } else {
        None
    };
    let (dir, config) = match resumed {
        Some(ExportResume::Committed(manifest)) => {
            return Ok(Summary::of_manifest(&target, &manifest, true));
        }
        Some(ExportResume::Converting(dir)) => (dir, config.clone()),
        None => {
            crate::plan::prepare_new_run(&target, config).await?;
            let progress = &*run.progress;
            let done = crate::source::export::run_export(aws, &table, request, progress).await?;
            // Nothing converted yet: a fresh start (the ClientToken found the export again).
            let mut fresh = config.clone();
            fresh.run.resume = false;
            (done.dir, fresh)
        }
    };
    let export = Export::open(
        Target::open_source(
            &crate::sink::Destination::parse(&dir)?,
            Some(&aws.s3),
            &config.output.s3,
        )
        .await?,
    )
    .await?;
    let keys: Vec<String> = table.key_schema.iter().map(|k| k.name.clone()).collect();
    let run = run.with_config(&config);
    convert_export_to(Some(&aws.region), export, target, &keys, Some(table), &run).await
}

/// What `snapshot --mode export --resume` found at the destination.
enum ExportResume {
    /// The snapshot is committed.
    Committed(Box<Manifest>),
    /// The export finished and its conversion stopped: continue converting this directory.
    Converting(String),
}

/// Where `snapshot --mode export --resume` picks up. `None` when the conversion has not started
/// (the run stopped while DynamoDB was exporting): run again, and the same ClientToken finds the
/// same export. Checks that the destination holds nothing else.
async fn resume_export(target: &Target, table: &str) -> Result<Option<ExportResume>> {
    let owned = target.list_owned().await?;
    if let Some(manifest) = committed(target, &owned).await? {
        return Ok(Some(ExportResume::Committed(Box::new(manifest))));
    }
    match read_checkpoint(target).await? {
        Some(checkpoint) if checkpoint.mode == RunMode::Export && checkpoint.table == table => {
            match checkpoint.source {
                Some(dir) => Ok(Some(ExportResume::Converting(dir))),
                None => Err(Error::invalid(format!(
                    "{CHECKPOINT_FILE} at {} does not say which export it converts; start over \
                     with --overwrite",
                    target.url
                ))),
            }
        }
        Some(checkpoint) => Err(Error::invalid(format!(
            "cannot resume the snapshot at {}: it is a {} snapshot of table '{}', not an export \
             of '{table}'; resume with the options of the first run, or start over with \
             --overwrite",
            target.url, checkpoint.mode, checkpoint.table
        ))),
        None if owned.is_empty() => Ok(None),
        None => Err(Error::invalid(format!(
            "{} has no {CHECKPOINT_FILE}, so there is nothing to resume; run without --resume \
             and with --overwrite to replace the files there",
            target.url
        ))),
    }
}

/// The export an export run asks for.
fn export_request(config: &SnapshotConfig) -> Result<&ExportRequest> {
    config
        .export
        .as_ref()
        .ok_or_else(|| Error::Internal("an export run without an export".into()))
}
