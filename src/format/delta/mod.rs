//! Delta Lake tables: a run's data files published as one commit to the table's log.
//!
//! A run writes its files into a folder of its own under the table root (`run=<utc-id>/`,
//! checkpointed like a snapshot, invisible to Delta readers until the commit), then one commit
//! makes it the table's next version: readers see the old version or the new one, never a mix,
//! and earlier versions stay readable (time travel) until `VACUUM` removes their files.
//! - A run of the whole table (a Scan, a full export) is a full refresh: the commit removes
//!   every current file and adds the run's.
//! - A change set (a timestamp pull, an incremental export) is a MERGE by primary key (see
//!   `merge`): only the files holding a changed key are rewritten.
//!
//! Log replay and commits go through `delta_kernel`, the Delta project's own kernel, so tables
//! that other engines also write (checkpoints, OPTIMIZE, VACUUM) keep working, with three
//! exceptions the kernel (0.30) cannot do:
//! - creating a table at the lowest protocol that holds the data (reader 1, writer 2; the kernel
//!   creates reader 3 / writer 7 tables, which older readers refuse): one JSON commit;
//! - a commit that changes a column's type (a number that now needs a decimal, a type conflict
//!   now stored as JSON text): it replaces the schema (`metaData`, same table id) as it removes
//!   every file, as Spark's `overwriteSchema` does; one JSON commit, only on tables at protocol
//!   1/2 (the ones ddbsnap creates), whose metadata holds nothing a feature adds;
//! - reading ddbsnap's own record of earlier runs from `commitInfo` (see `log`).
//!
//! Both own commits are put only if no other writer has taken that version. Otherwise columns
//! a run has and the table lacks are added through the kernel (nullable, at any struct level),
//! and columns the run lacks stay (null in its files).
//!
//! Every commit carries a `txn` action whose application id names the run (`ddbsnap-<run>`):
//! a run resumed after a crash between its commit and its cleanup finds its own commit in the
//! log and does not commit twice. A concurrent writer that takes the version first is met by
//! optimistic concurrency (see `concurrency`): the commit is put again, or recomputed, at the
//! next version; only after five lost tries does the run fail, its files kept for `--resume`.

mod checkpoint;
mod cleanup;
mod compact;
mod concurrency;
pub(crate) mod log;
mod mapping;
mod merge;
mod rewrite;
mod table;
mod vacuum;

use std::sync::Arc;

use delta_kernel::Snapshot;
use delta_kernel_default_engine::DefaultEngineBuilder;
use tokio::runtime::Handle;

use super::ColumnMapping;
use super::publish::{Continue, FinishedRun, Published, Publisher};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sink::Target;
use crate::window::{Admission, ChangeWindow, Coverage, Feed, OnGap};

pub use compact::Compaction;
pub(crate) use compact::optimize;
pub(crate) use table::Run;
use table::{
    Commit, app_id, create, has_log, location, log_path, on_table, table_error, upkeep_after,
};
pub use table::{DeltaCommit, MergeStats};
pub use vacuum::Vacuum;
pub(crate) use vacuum::{VacuumOptions, vacuum};

pub use super::DELTA_LOG;

/// The Delta Lake table format: each run is one new version of the table.
pub(crate) struct DeltaTable;

#[async_trait::async_trait]
impl Publisher for DeltaTable {
    async fn publish(&self, run: FinishedRun<'_>) -> Result<Published> {
        let (table, name) = run
            .target
            .split_parent()
            .ok_or_else(|| Error::Internal("a Delta run is not in a folder of its table".into()))?;
        let run = Run {
            folder: run.target.clone(),
            source: run.target.clone(),
            name,
            manifest: run.manifest.clone(),
            shape: run.shape.clone(),
            writer: run.writer,
            progress: Arc::clone(run.progress),
        };
        let done = publish(&table, run).await?;
        Ok(Published {
            url: table.url,
            delta: Some(done),
            rewritten: 0,
        })
    }

    async fn tidy(&self, target: &Target, manifest: &Manifest) {
        if is_change_set(manifest) || maps_columns(target).await {
            // A MERGE's change set was never part of the table, nor the files of a full
            // refresh that the table holds under physical names; once the checkpoint is gone
            // no resume needs them. Left behind by a crash, VACUUM removes them.
            for file in &manifest.files {
                let _ = target.delete(&target.path(&file.path)).await;
            }
        }
    }

    async fn keys(&self, root: &Target) -> Result<Option<Vec<String>>> {
        key_names(root).await
    }

    async fn committed_version(&self, target: &Target) -> Result<Option<u64>> {
        match target.split_parent() {
            Some((table, name)) => committed_version(&table, &name).await,
            None => Ok(None),
        }
    }

    async fn continues(&self, root: &Target, feed: &Feed) -> Result<Option<Continue>> {
        let Some((version, record)) = latest_record(root).await? else {
            return Ok(None);
        };
        let coverage = covered(root, version, &record)?;
        let until = coverage.until_for(feed).map_err(|why| {
            Error::invalid(format!(
                "--since last: version {version} of the Delta table has nothing to continue: \
                 {why}"
            ))
        })?;
        Ok(Some(Continue {
            until,
            refreshed_at: record.last_refresh(),
        }))
    }

    async fn admit(
        &self,
        root: &Target,
        change: &ChangeWindow,
        on_gap: OnGap,
    ) -> Result<Admission> {
        admit(root, change, on_gap).await
    }
}

/// The version of the Delta table at `table` that holds the run in its folder `name`, when it
/// was committed (its `txn` action is in the log).
pub(crate) async fn committed_version(table: &Target, name: &str) -> Result<Option<u64>> {
    let (store, url) = location(table)?;
    let log = log_path(&url)?;
    if !has_log(table, &store, &log).await? {
        return Ok(None);
    }
    let table = table.clone();
    let app = app_id(name);
    tokio::task::spawn_blocking(move || {
        let engine = DefaultEngineBuilder::new(store).build();
        let snapshot = Snapshot::builder_for(url.as_str())
            .build(&engine)
            .map_err(|e| table_error(&table, "reading the Delta log", e))?;
        let found = snapshot
            .get_app_id_version(&app, &engine)
            .map_err(|e| table_error(&table, "reading the Delta log", e))?;
        Ok(found.map(|_| snapshot.version()))
    })
    .await
    .map_err(|e| Error::Internal(format!("the Delta log thread failed: {e}")))?
}

/// Publish `run` as the next version of the Delta table at `table`: a full refresh (every
/// current file removed, the run's files added) or, when the run is a change set (a timestamp
/// pull, an incremental export), a MERGE by primary key (see [`merge`]). Creates the table when
/// there is none, except from an incremental export, which holds changes only.
pub(crate) async fn publish(table: &Target, run: Run) -> Result<DeltaCommit> {
    let changes = merge::ChangeKind::of(&run.manifest);
    publish_as(table, run, changes).await
}

/// [`publish`] `run` as a change set of the kind `changes` (`None`: the whole table).
async fn publish_as(
    table: &Target,
    mut run: Run,
    changes: Option<merge::ChangeKind>,
) -> Result<DeltaCommit> {
    let (store, url) = location(table)?;
    let log = log_path(&url)?;
    if !has_log(table, &store, &log).await? {
        if changes == Some(merge::ChangeKind::ChangeLog) {
            return Err(no_table_to_merge(table));
        }
        let (commit, run_back) = tokio::task::spawn_blocking(move || {
            let mapping = match run.manifest.options.column_mapping {
                ColumnMapping::None => None,
                ColumnMapping::Name => Some(mapping::Mapping::default()),
            };
            let commit = match changes {
                Some(merge::ChangeKind::Log) => {
                    merge::first_log(&run, mapping.as_ref(), &Handle::current())
                }
                _ => Commit::refresh(&run, mapping.as_ref(), &Handle::current()),
            };
            (commit, run)
        })
        .await
        .map_err(|e| Error::Internal(format!("the Delta commit thread failed: {e}")))?;
        run = run_back;
        if let Some(done) = create(table, &store, &log, &commit?, &run.manifest.table).await? {
            return Ok(done);
        }
        // Another writer created the table first: this run commits as its next version.
    }
    on_table(table, move |delta| {
        if delta
            .snapshot
            .get_app_id_version(&run.app_id(), delta.engine)
            .map_err(delta.kernel("reading the Delta log"))?
            .is_some()
        {
            return Ok(DeltaCommit::already(delta.snapshot.version()));
        }
        mapping_allowed(delta, run.manifest.options.column_mapping)?;
        let mut done = concurrency::commit(delta, &|at| match changes {
            None => Ok(concurrency::Prepared {
                commit: Commit::refresh(&run, at.mapping()?.as_ref(), at.handle)?,
                removes: None,
                changed: None,
            }),
            Some(kind) => merge::prepare(at, &run, kind),
        })?;
        if !done.already_committed {
            upkeep_after(delta, &mut done, run.progress.as_ref());
        }
        Ok(done)
    })
    .await
}

/// Append the change records of `run` (a stream run of the table they changed, its files a
/// change log) to the table of changes at `table`, as one commit that records the run (its
/// `txn`, so it is appended once whatever happens after) and its stream positions; the table
/// is created by the first run that has a record. `None` when there was nothing to create it
/// with.
pub(crate) async fn append_changes(
    table: &Target,
    run: &FinishedRun<'_>,
) -> Result<Option<DeltaCommit>> {
    let (_, name) = run
        .target
        .split_parent()
        .ok_or_else(|| Error::Internal("a Delta run is not in a folder of its table".into()))?;
    if run.manifest.totals.items_written == 0 && !exists(table).await? {
        return Ok(None);
    }
    let run = Run {
        folder: table.child(&name),
        source: run.target.clone(),
        name,
        manifest: run.manifest.clone(),
        shape: run.shape.clone(),
        writer: run.writer.clone(),
        progress: Arc::clone(run.progress),
    };
    publish_as(table, run, Some(merge::ChangeKind::Log))
        .await
        .map(Some)
}

/// Before a run: an error when the Delta table at `table` (if there is one) is one the run
/// cannot write (see [`mapping_allowed`]).
pub(crate) async fn check_writable(table: &Target, wanted: ColumnMapping) -> Result<()> {
    if !exists(table).await? {
        return Ok(());
    }
    on_table(table, move |delta| mapping_allowed(delta, wanted)).await
}

/// An error when the run, which asks for `wanted` column mapping, cannot write the table at
/// `delta`: column mapping ddbsnap does not write (see [`table::Delta::mapping`]), or
/// `--column-mapping name` on a table created without it (its mapping was chosen then).
fn mapping_allowed(delta: &table::Delta<'_>, wanted: ColumnMapping) -> Result<()> {
    if delta.mapping()?.is_none() && wanted == ColumnMapping::Name {
        return Err(Error::invalid(format!(
            "{} is a Delta table without column mapping, so --column-mapping name cannot apply \
             to it (a table's column mapping is chosen when it is created); run without it, or \
             write to a new table location",
            delta.table.url()
        )));
    }
    Ok(())
}

/// True when the run folder `run` is in a Delta table with column mapping.
async fn maps_columns(run: &Target) -> bool {
    let Some((table, _)) = run.split_parent() else {
        return false;
    };
    on_table(&table, |delta| Ok(delta.mapping().ok().flatten().is_some()))
        .await
        .unwrap_or(false)
}

/// True when `table` holds a Delta table (its log has a commit or a checkpoint).
pub(crate) async fn exists(table: &Target) -> Result<bool> {
    let (store, url) = location(table)?;
    has_log(table, &store, &log_path(&url)?).await
}

/// The latest ddbsnap record in the log of the Delta table at `table`, with the table's
/// version; `None` when there is no table.
pub(crate) async fn latest_record(table: &Target) -> Result<Option<(u64, log::Record)>> {
    let (store, url) = location(table)?;
    let log = log_path(&url)?;
    if !has_log(table, &store, &log).await? {
        return Ok(None);
    }
    let engine_store = Arc::clone(&store);
    let engine_table = table.clone();
    let version = tokio::task::spawn_blocking(move || {
        let engine = DefaultEngineBuilder::new(engine_store).build();
        Snapshot::builder_for(url.as_str())
            .build(&engine)
            .map(|s| s.version())
            .map_err(|e| table_error(&engine_table, "reading the Delta log", e))
    })
    .await
    .map_err(|e| Error::Internal(format!("the Delta log thread failed: {e}")))??;
    match log::latest_record(table, &store, &log, version).await? {
        Some((_, record)) => Ok(Some((version, record))),
        None => Err(Error::Destination {
            url: table.url().to_owned(),
            message: format!(
                "version {version} of the Delta table and the commits before it that its log \
                 still holds were not made by ddbsnap, so there is no watermark to continue \
                 from; give --since a time, or refresh the whole table once"
            ),
            source: None,
        }),
    }
}

/// The key attributes of the Delta table at `table`, partition key first, as its table
/// properties record them (`ddbsnap.keySchema`, set when ddbsnap created it); `None` when
/// there is no table or it records none.
pub(crate) async fn key_names(table: &Target) -> Result<Option<Vec<String>>> {
    let (store, url) = location(table)?;
    if !has_log(table, &store, &log_path(&url)?).await? {
        return Ok(None);
    }
    let keys = on_table(table, |delta| delta.source()).await?;
    Ok(keys.map(|(_, keys)| keys.into_iter().map(|k| k.name).collect()))
}

/// What the Delta table at `table` holds (see [`crate::window`]), with its version; `None`
/// when there is no table. An error when its log has no ddbsnap record to tell.
pub(crate) async fn coverage(table: &Target) -> Result<Option<(u64, Coverage)>> {
    let Some((version, record)) = latest_record(table).await? else {
        return Ok(None);
    };
    covered(table, version, &record).map(|coverage| Some((version, coverage)))
}

/// What the table holds after the commit `record` (at or before `version`) made.
fn covered(table: &Target, version: u64, record: &log::Record) -> Result<Coverage> {
    match record.coverage() {
        Some(coverage) => Ok(coverage),
        None => Err(Error::Destination {
            url: table.url().to_owned(),
            message: format!(
                "the latest ddbsnap commit (run {}, at or before version {version}) does not \
                 say up to when the table holds every change (it was made by {}); refresh \
                 the whole table once",
                record.run, record.mode
            ),
            source: None,
        }),
    }
}

/// Decide, before anything is written, whether the change set `change` may be merged into the
/// Delta table at `table` (see [`crate::window::admit`]). An incremental export cannot start a
/// table (it holds changes only); a pull can.
pub(crate) async fn admit(
    table: &Target,
    change: &ChangeWindow,
    on_gap: OnGap,
) -> Result<Admission> {
    match coverage(table).await? {
        Some((_, held)) => crate::window::admit(table.url(), &held, change, on_gap),
        None if change.feed == Feed::Export => Err(no_table_to_merge(table)),
        None => Ok(Admission::Apply),
    }
}

fn no_table_to_merge(table: &Target) -> Error {
    Error::invalid(format!(
        "{} has no Delta table to merge the incremental export into; create it from a full \
         export or a full refresh first",
        table.url()
    ))
}

/// True when the run of `manifest` is a change set that a MERGE applies (a timestamp pull, an
/// incremental export): its files are scratch, never added to the table.
pub(crate) fn is_change_set(manifest: &Manifest) -> bool {
    merge::ChangeKind::of(manifest).is_some()
}
