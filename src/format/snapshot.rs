//! The snapshot folder: a run's folder is the snapshot, and `_manifest.json`, written last,
//! is its commit. Periodic pulls keep each run in a `run=` folder of the dataset root; the
//! latest committed one says where the dataset is current.

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::publish::{Continue, FinishedRun, Published, Publisher};
use super::pulls::latest_run;
use crate::convert::{NumberMode, TableShape};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::shard::SHARDS_DIR;
use crate::sink::reader::write_manifest;
use crate::sink::{STAGING_DIR, Target, remove_empty_folders, staged_name};
use crate::window::{Admission, ChangeWindow, Feed, OnGap};

/// The snapshot folder format.
pub(crate) struct SnapshotFolder;

#[async_trait]
impl Publisher for SnapshotFolder {
    async fn shape(
        &self,
        run: &Target,
        shape: &TableShape,
        numbers: NumberMode,
        pulls: bool,
    ) -> Result<TableShape> {
        if pulls {
            super::pulls::shape(run, shape, numbers).await
        } else {
            Ok(shape.clone())
        }
    }

    async fn publish(&self, run: FinishedRun<'_>) -> Result<Published> {
        let rewritten = if run.pulls {
            super::pulls::widen_earlier_runs(&run).await?
        } else {
            0
        };
        let target = run.target;
        move_into_place(target, run.manifest).await?;
        write_manifest(target, run.manifest).await?;
        Ok(Published {
            url: target.url.clone(),
            delta: None,
            rewritten,
        })
    }

    async fn tidy(&self, target: &Target, _: &Manifest) {
        // Object stores have no folders; a local one keeps the emptied ones.
        if let Some(dir) = target.local_dir() {
            for folder in [STAGING_DIR, SHARDS_DIR] {
                remove_empty_folders(&dir.join(folder));
            }
        }
    }

    async fn keys(&self, _: &Target) -> Result<Option<Vec<String>>> {
        // Each snapshot is read whole, never merged into: any keys go.
        Ok(None)
    }

    async fn committed_version(&self, _: &Target) -> Result<Option<u64>> {
        // A committed snapshot is its folder's manifest.
        Ok(None)
    }

    async fn continues(&self, root: &Target, feed: &Feed) -> Result<Option<Continue>> {
        let Some((run, manifest)) = latest_run(root).await? else {
            return Ok(None);
        };
        let until = manifest
            .coverage()
            .ok_or_else(|| format!("it was made by {}", manifest.mode))
            .and_then(|held| held.until_for(feed))
            .map_err(|why| {
                Error::invalid(format!(
                    "--since last: the latest run {run} has nothing to continue: {why}"
                ))
            })?;
        Ok(Some(Continue {
            until,
            refreshed_at: manifest.last_refresh(),
        }))
    }

    async fn admit(
        &self,
        root: &Target,
        change: &ChangeWindow,
        on_gap: OnGap,
    ) -> Result<Admission> {
        match latest_run(root).await? {
            Some((_, manifest)) => match manifest.coverage() {
                Some(held) => crate::window::admit(root.url(), &held, change, on_gap),
                None => Ok(Admission::Apply),
            },
            None => Ok(Admission::Apply),
        }
    }
}

/// Move the run's data files from `_staging/` to their names in the folder, where readers find
/// them, before the manifest is written. Done again after a stopped commit: a file already
/// moved is left as it is. Each move is atomic (a rename locally, a copy then a delete on S3),
/// so readers of the folder see the files appear one by one within the commit.
async fn move_into_place(target: &Target, manifest: &Manifest) -> Result<()> {
    futures::stream::iter(manifest.files.iter().map(|f| Ok::<_, Error>(&f.path)))
        .try_for_each_concurrent(MOVES_AT_ONCE, |name| async move {
            let from = target.path(&staged_name(name));
            let to = target.path(name);
            match target.store.rename(&from, &to).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::NotFound { .. }) => match target.store.head(&to).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(target.error(&format!("publishing {name}"), e)),
                },
                Err(e) => Err(target.error(&format!("moving {STAGING_DIR}/{name} into place"), e)),
            }
        })
        .await
}

/// Files moved at once by the commit (on S3, each move is a copy and a delete).
const MOVES_AT_ONCE: usize = 32;
