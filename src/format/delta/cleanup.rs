//! Log cleanup, as the Delta protocol's "Metadata Cleanup" specifies it: after a checkpoint,
//! the JSON commits and checkpoints older than `delta.logRetentionDuration` (30 days unless
//! the table says otherwise; none when `delta.enableExpiredLogCleanup` is false) are removed,
//! but only those before the newest checkpoint that is itself at or before the cutoff, so
//! every version inside the retention window can still be read (time travel), and the log
//! always starts at a checkpoint.
//!
//! 1. The cutoff is midnight UTC of the day the retention reaches back to (as Delta's own
//!    writers truncate it); the cutoff commit is the newest commit not newer than it (a
//!    commit's time is its file's modification time).
//! 2. The cutoff checkpoint is the newest complete checkpoint at or before the cutoff commit.
//! 3. Commits, checkpoints, checksums (`.crc`) and log compactions before the cutoff
//!    checkpoint's version are deleted; the checkpoint and everything after it stay.
//!
//! Logs holding V2 checkpoints (named by a UUID, with sidecar files) are left alone: their
//! sidecars are shared between checkpoints, which this cleanup does not track.
//!
//! ddbsnap's own record (see [`super::log`]) lives in the `commitInfo` of its commits, and
//! cleanup runs right after a ddbsnap commit, at or after the cutoff checkpoint: the newest
//! record is never removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// How long the log keeps commits when the table does not say (`delta.logRetentionDuration`).
pub(super) const DEFAULT_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A file of the log, by what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LogFile {
    /// `<v>.json`
    Commit(u64),
    /// `<v>.checkpoint.parquet` (part `1` of `1`) or `<v>.checkpoint.<p>.<n>.parquet`.
    Checkpoint { version: u64, part: u32, parts: u32 },
    /// `<v>.checkpoint.<uuid>.(json|parquet)`.
    V2Checkpoint(u64),
    /// `<v>.crc`, `<x>.<y>.compacted.json`: optional files, removed with what they follow.
    Extra(u64),
}

impl LogFile {
    /// What a log file name is; `None` for `_last_checkpoint` and anything unknown.
    fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.split('.').collect();
        let version = |s: &str| (s.len() == 20).then(|| s.parse::<u64>().ok()).flatten();
        let v = version(parts.first()?)?;
        match parts[1..] {
            ["json"] => Some(LogFile::Commit(v)),
            ["crc"] => Some(LogFile::Extra(v)),
            [end, "compacted", "json"] => version(end).map(|_| LogFile::Extra(v)),
            ["checkpoint", "parquet"] => Some(LogFile::Checkpoint {
                version: v,
                part: 1,
                parts: 1,
            }),
            ["checkpoint", part, parts, "parquet"] => Some(LogFile::Checkpoint {
                version: v,
                part: part.parse().ok()?,
                parts: parts.parse().ok()?,
            }),
            ["checkpoint", _, "json" | "parquet"] => Some(LogFile::V2Checkpoint(v)),
            _ => None,
        }
    }

    fn version(&self) -> u64 {
        match self {
            LogFile::Commit(v) | LogFile::V2Checkpoint(v) | LogFile::Extra(v) => *v,
            LogFile::Checkpoint { version, .. } => *version,
        }
    }
}

/// The files of a log listing that cleanup with `retention` removes at time `now`.
fn expired(files: &[ObjectMeta], retention: Duration, now: DateTime<Utc>) -> Vec<Path> {
    let parsed: Vec<(LogFile, &ObjectMeta)> = files
        .iter()
        .filter_map(|m| Some((LogFile::parse(m.location.filename()?)?, m)))
        .collect();
    if parsed
        .iter()
        .any(|(f, _)| matches!(f, LogFile::V2Checkpoint(_)))
    {
        return Vec::new();
    }
    let Some(reach) = chrono::TimeDelta::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
    else {
        return Vec::new();
    };
    let cutoff = reach
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let Some(cutoff_commit) = parsed
        .iter()
        .filter_map(|(f, m)| match f {
            LogFile::Commit(v) if m.last_modified <= cutoff => Some(*v),
            _ => None,
        })
        .max()
    else {
        return Vec::new();
    };
    // Complete checkpoints: every part of a multi-part one is there.
    let mut parts: BTreeMap<(u64, u32), u32> = BTreeMap::new();
    for (f, _) in &parsed {
        if let LogFile::Checkpoint {
            version, parts: n, ..
        } = f
        {
            *parts.entry((*version, *n)).or_default() += 1;
        }
    }
    let Some(checkpoint) = parts
        .iter()
        .filter(|((v, n), found)| *v <= cutoff_commit && *found >= n)
        .map(|((v, _), _)| *v)
        .max()
    else {
        return Vec::new();
    };
    parsed
        .into_iter()
        .filter(|(f, _)| f.version() < checkpoint)
        .map(|(_, m)| m.location.clone())
        .collect()
}

/// Remove the log files of the log at `log` (in `store`) that have expired (see the module
/// documentation); returns how many were removed.
pub(super) async fn clean_log(
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    retention: Duration,
) -> object_store::Result<usize> {
    let files: Vec<ObjectMeta> = store.list(Some(log)).try_collect().await?;
    let doomed = expired(&files, retention, Utc::now());
    for path in &doomed {
        match store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, days_ago: i64, now: DateTime<Utc>) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(format!("t/_delta_log/{name}")),
            last_modified: now - chrono::TimeDelta::days(days_ago),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    fn names(paths: &[Path]) -> Vec<String> {
        let mut n: Vec<String> = paths
            .iter()
            .map(|p| p.filename().unwrap().to_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn removes_only_what_a_checkpoint_at_or_before_the_cutoff_covers() {
        let now = "2026-12-06T12:00:00Z".parse().unwrap();
        let thirty = DEFAULT_LOG_RETENTION;
        let v = |n: u64| format!("{n:020}");
        // Versions 0..=24, version k made 40 - k days ago; checkpoints at 10 and 20.
        let mut files: Vec<ObjectMeta> = (0..=24)
            .map(|k| meta(&format!("{}.json", v(k)), 40 - k as i64, now))
            .collect();
        files.push(meta(&format!("{}.checkpoint.parquet", v(10)), 30, now));
        files.push(meta(&format!("{}.checkpoint.parquet", v(20)), 20, now));
        files.push(meta(&format!("{}.crc", v(3)), 37, now));
        files.push(meta("_last_checkpoint", 20, now));
        // The cutoff is midnight 30 days ago: version 9 (31 days old) is the cutoff commit,
        // and no checkpoint is at or before it: nothing goes.
        assert!(expired(&files, thirty, now).is_empty());
        // At 25 days the cutoff commit is version 14; the checkpoint at 10 covers 0..=9.
        let gone = names(&expired(&files, Duration::from_secs(25 * 86_400), now));
        let mut want: Vec<String> = (0..10).map(|k| format!("{}.json", v(k))).collect();
        want.push(format!("{}.crc", v(3)));
        want.sort();
        assert_eq!(gone, want);
        // With no retention the checkpoint at 20 is the cutoff checkpoint; it stays.
        let gone = expired(&files, Duration::ZERO, now);
        assert_eq!(gone.len(), 20 + 1 + 1, "{:?}", names(&gone));
        assert!(!names(&gone).contains(&format!("{}.checkpoint.parquet", v(20))));
        // A multi-part checkpoint missing a part covers nothing.
        let mut partial: Vec<ObjectMeta> = files[..=24].to_vec();
        partial.push(meta(
            &format!("{}.checkpoint.0000000001.0000000002.parquet", v(20)),
            20,
            now,
        ));
        assert!(expired(&partial, Duration::ZERO, now).is_empty());
        partial.push(meta(
            &format!("{}.checkpoint.0000000002.0000000002.parquet", v(20)),
            20,
            now,
        ));
        assert_eq!(expired(&partial, Duration::ZERO, now).len(), 20);
        // A V2 checkpoint anywhere: left alone.
        files.push(meta(
            &format!(
                "{}.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json",
                v(22)
            ),
            2,
            now,
        ));
        assert!(expired(&files, Duration::ZERO, now).is_empty());
    }
}
