//! `ddbsnap vacuum`: the files under a Delta table that no version inside the retention window
//! needs, removed, by the rules of Delta's own VACUUM.
//!
//! - A file is needed when a version a reader may still ask for holds it: the version that was
//!   current when the window began (the newest commit not newer than now minus the retention)
//!   and every version after it. So the files of that version, plus every file a later commit
//!   adds, are kept; time travel to any moment inside the window keeps working.
//! - Every other file under the table is removed once it is older than the window, including
//!   files no commit ever added (a compaction or another engine's write that never
//!   committed). Files and folders whose names start with `_` or `.` are not data (the log,
//!   `_checkpoint.json`, other engines' metadata) and are left alone, with one exception:
//! - A ddbsnap run that never committed keeps its folder while its `_checkpoint.json` is
//!   inside the window (`--resume` may still finish it); once the checkpoint is older, the whole
//!   folder goes, checkpoint included.
//! - A retention shorter than the table's `delta.deletedFileRetentionDuration` (7 days unless
//!   the table says otherwise) is refused without `--force`: a reader or writer still working
//!   on a recent version could lose a file under it.
//!
//! `--dry-run` lists what would go and removes nothing. Locally, the staging files of uploads a
//! killed run left (`name#N`) count as files of their folder.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use delta_kernel::Snapshot;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::table::{Delta, on_table, table_error};
use crate::error::{Error, Result};
use crate::sink::{CHECKPOINT_FILE, RUN_PREFIX, Target};

/// How long removed files stay when the table does not say
/// (`delta.deletedFileRetentionDuration`).
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Files removed at a time.
const DELETES_IN_FLIGHT: usize = 32;

/// What `ddbsnap vacuum` removed (or, with `--dry-run`, would remove).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Vacuum {
    /// The table.
    pub table: String,
    /// Nothing was removed: `files` is what would be.
    pub dry_run: bool,
    /// The retention window, in hours.
    pub retain_hours: f64,
    /// The table version whose files (and every later version's) were kept.
    pub oldest_version_kept: u64,
    /// The files removed, relative to the table.
    pub files: Vec<String>,
    /// Their total size.
    pub bytes: u64,
}

/// How to vacuum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VacuumOptions {
    /// The retention window; `None`: the table's `delta.deletedFileRetentionDuration`.
    pub retain: Option<Duration>,
    /// List, do not remove.
    pub dry_run: bool,
    /// Allow a window shorter than the table's retention.
    pub force: bool,
}

/// Vacuum the Delta table at `table` (see the module documentation).
pub(crate) async fn vacuum(table: &Target, options: VacuumOptions) -> Result<Vacuum> {
    let (keep, retain, kept_from) = on_table(table, move |delta| needed(delta, options)).await?;
    let (store, url) = super::table::location(table)?;
    let root = Path::from_url_path(url.path())
        .map_err(|e| Error::Internal(format!("table URL {url}: {e}")))?;
    let mut listing: Vec<ObjectMeta> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| table.error("listing the table's files", e))?;
    if let Some(dir) = table.local_dir() {
        listing.extend(abandoned_uploads(&dir, &root));
    }
    let cutoff = window_start(retain);
    let doomed = unneeded(&root, &listing, &keep, cutoff);
    if !options.dry_run {
        remove(table, &store, &doomed).await?;
    }
    Ok(Vacuum {
        table: table.url().to_owned(),
        dry_run: options.dry_run,
        retain_hours: retain.as_secs_f64() / 3600.0,
        oldest_version_kept: kept_from,
        bytes: doomed.iter().map(|(_, m)| m.size).sum(),
        files: doomed.into_iter().map(|(name, _)| name).collect(),
    })
}

/// The staging files of local uploads that never finished (`name#N`, left by a killed run),
/// which the local store does not list, outside the log, as listing entries under `root`.
fn abandoned_uploads(dir: &std::path::Path, root: &Path) -> Vec<ObjectMeta> {
    let mut found = Vec::new();
    let mut folders = vec![(dir.to_owned(), root.clone())];
    while let Some((folder, path)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && name != super::DELTA_LOG {
                folders.push((entry.path(), path.clone().join(name.as_str())));
            } else if meta.is_file() && name.contains('#') {
                found.push(ObjectMeta {
                    location: path.clone().join(name.as_str()),
                    last_modified: meta
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_default(),
                    size: meta.len(),
                    e_tag: None,
                    version: None,
                });
            }
        }
    }
    found
}

/// When a window of `retain` that ends now began (the earliest time there is, for a window
/// longer than time itself).
fn window_start(retain: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(retain)
        .ok()
        .and_then(|r| Utc::now().checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The files (relative, decoded) that the versions inside the window need, the window, and the
/// oldest version kept.
fn needed(delta: &Delta<'_>, options: VacuumOptions) -> Result<(HashSet<String>, Duration, u64)> {
    let minimum = delta
        .snapshot
        .table_properties()
        .deleted_file_retention_duration
        .unwrap_or(DEFAULT_RETENTION);
    let retain = options.retain.unwrap_or(minimum);
    if retain < minimum && !options.force {
        return Err(Error::invalid(format!(
            "--retain {} is shorter than the table's delta.deletedFileRetentionDuration ({}): \
             a reader or writer still on a recent version could lose a file; give --force to \
             vacuum anyway",
            crate::config::show_duration(retain),
            crate::config::show_duration(minimum)
        )));
    }
    let cutoff = window_start(retain);
    let commits = delta.handle.block_on(commit_times(delta))?;
    let latest = delta.snapshot.version();
    let first = commits.keys().next().copied().unwrap_or(latest);
    let from = commits
        .iter()
        .filter(|(_, at)| **at <= cutoff)
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(first)
        .min(latest);
    let mut keep = HashSet::new();
    let oldest = if from == latest {
        Arc::clone(&delta.snapshot)
    } else {
        Snapshot::builder_for(delta.url.as_str())
            .at_version(from)
            .build(delta.engine)
            .map_err(|e| {
                table_error(
                    delta.table,
                    "vacuuming",
                    format!("version {from}, the oldest inside the window, cannot be read ({e})"),
                )
            })?
    };
    let at_from = Delta {
        snapshot: oldest,
        ..*delta
    };
    for file in at_from
        .files()?
        .into_iter()
        .flat_map(|b| b.files.into_iter().flatten())
    {
        keep.insert(decoded(&file.path));
    }
    for version in from + 1..=latest {
        if !commits.contains_key(&version) {
            return Err(table_error(
                delta.table,
                "vacuuming",
                format!(
                    "the log has no commit {version}, so the files versions inside the window \
                     need cannot be told; nothing was removed"
                ),
            ));
        }
        keep.extend(delta.handle.block_on(added_in(delta, version))?);
    }
    Ok((keep, retain, from))
}

/// When each JSON commit of the log was written (its file's modification time).
async fn commit_times(delta: &Delta<'_>) -> Result<BTreeMap<u64, DateTime<Utc>>> {
    let listing: Vec<ObjectMeta> = delta
        .store
        .list(Some(delta.log))
        .try_collect()
        .await
        .map_err(|e| delta.table.error("listing the Delta log", e))?;
    Ok(listing
        .iter()
        .filter_map(|m| {
            let name = m.location.filename()?;
            let version = name.strip_suffix(".json")?;
            (version.len() == 20).then(|| Some((version.parse().ok()?, m.last_modified)))?
        })
        .collect())
}

/// The files commit `version` adds (data and change files), relative and decoded.
async fn added_in(delta: &Delta<'_>, version: u64) -> Result<Vec<String>> {
    let actions = super::log::actions(delta.table, delta.store, delta.log, version).await?;
    Ok(actions
        .iter()
        .flat_map(|a| [&a["add"]["path"], &a["cdc"]["path"]])
        .filter_map(|p| p.as_str())
        .map(decoded)
        .collect())
}

/// A log path as a relative file name: percent-decoded.
fn decoded(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The files of `listing` (under `root`) that no kept version needs and that are older than
/// `cutoff`, by relative name (see the module documentation).
fn unneeded(
    root: &Path,
    listing: &[ObjectMeta],
    keep: &HashSet<String>,
    cutoff: DateTime<Utc>,
) -> Vec<(String, ObjectMeta)> {
    let relative = |m: &ObjectMeta| -> Option<Vec<String>> {
        let parts: Vec<String> = m
            .location
            .prefix_match(root)?
            .map(|p| decoded(p.as_ref()))
            .collect();
        (!parts.is_empty()).then_some(parts)
    };
    let hidden = |part: &String| part.starts_with('_') || part.starts_with('.');
    // Run folders whose checkpoint is recent: a run that may still be resumed.
    let resumable: HashSet<String> = listing
        .iter()
        .filter(|m| m.last_modified > cutoff)
        .filter_map(relative)
        .filter(|p| p.len() == 2 && p[0].starts_with(RUN_PREFIX) && p[1] == CHECKPOINT_FILE)
        .map(|mut p| p.swap_remove(0))
        .collect();
    let mut doomed = Vec::new();
    for meta in listing {
        let Some(parts) = relative(meta) else {
            continue;
        };
        let name = parts.join("/");
        if meta.last_modified > cutoff || keep.contains(&name) {
            continue;
        }
        let stale_run = parts.len() >= 2
            && parts[0].starts_with(RUN_PREFIX)
            && !resumable.contains(parts[0].as_str());
        let data = !parts.iter().any(hidden);
        if data || stale_run {
            doomed.push((name, meta.clone()));
        }
    }
    doomed.sort_by(|a, b| a.0.cmp(&b.0));
    doomed
}

/// Remove `files`, a few at a time; then, locally, the folders they leave empty.
async fn remove(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    files: &[(String, ObjectMeta)],
) -> Result<()> {
    let local = table.local_dir();
    let local = local.as_ref();
    futures::stream::iter(files)
        .map(|(name, meta)| async move {
            if let (Some(dir), true) = (local, name.contains('#')) {
                // A local upload's staging file, which the store does not address.
                return match std::fs::remove_file(dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Destination {
                        url: table.url().to_owned(),
                        message: format!("removing {name}: {e}"),
                        source: None,
                    }),
                    _ => Ok(()),
                };
            }
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(table.error(&format!("removing {name}"), e)),
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    if let Some(dir) = table.local_dir() {
        let mut folders: Vec<std::path::PathBuf> = files
            .iter()
            .filter_map(|(name, _)| dir.join(name).parent().map(std::path::Path::to_owned))
            .collect();
        folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
        folders.dedup();
        for folder in folders.iter().filter(|f| f.starts_with(&dir) && **f != dir) {
            // Only empty folders go; one that still holds a file stays.
            let _ = std::fs::remove_dir(folder);
        }
    }
    Ok(())
}
