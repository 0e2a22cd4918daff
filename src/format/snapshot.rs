//! The snapshot folder: a run's folder is the snapshot, and `_manifest.json`, written last,
//! is its commit. Periodic pulls keep each run in a `run=` folder of the dataset root; the
//! latest committed one says where the dataset is current.

use async_trait::async_trait;
use object_store::ObjectStoreExt;

use super::publish::{Continue, FinishedRun, Published, Publisher};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sink::reader::read_manifest;
use crate::sink::{MANIFEST_FILE, Target};
use crate::window::{Admission, ChangeWindow, Feed, OnGap};

/// The snapshot folder format.
pub(crate) struct SnapshotFolder;

#[async_trait]
impl Publisher for SnapshotFolder {
    async fn publish(&self, run: FinishedRun<'_>) -> Result<Published> {
        let target = run.target;
        let body = serde_json::to_vec_pretty(run.manifest)
            .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
        target
            .store
            .put(&target.path(MANIFEST_FILE), body.into())
            .await
            .map_err(|e| target.error("writing _manifest.json", e))?;
        Ok(Published {
            url: target.url.clone(),
            delta: None,
        })
    }

    async fn tidy(&self, _: &Target, _: &Manifest) {}

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

/// The latest committed run under the dataset root `root`, with its manifest.
pub(crate) async fn latest_run(root: &Target) -> Result<Option<(String, Manifest)>> {
    let runs = root.runs().await?;
    let Some(run) = runs.into_iter().rev().find(|r| r.committed) else {
        return Ok(None);
    };
    let manifest = read_manifest(&root.child(&run.name)).await?;
    Ok(Some((run.name, manifest)))
}
