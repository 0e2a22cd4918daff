//! Optimistic concurrency, as Delta defines it: a commit is prepared against the version the
//! run read; when another writer takes the next version first, the versions it lost to are
//! read, and
//! - if none of them removed a file this commit removes, added a file that may hold a key this
//!   commit changes, or changed the table's metadata, the same commit is put again at the next
//!   free version (a full refresh always is: it removes whatever is current then);
//! - otherwise the commit is prepared again against the newest version (a MERGE recomputed:
//!   the files holding its keys are found and rewritten anew).
//!
//! After [`ATTEMPTS`] tries the run fails (exit code 6) with its files kept for `--resume`.

use std::collections::HashSet;

use super::rewrite::open_at;
use super::table::{Attempt, Commit, Delta, DeltaCommit, TableFile};
use crate::changes::key_text;
use crate::convert::Columns;
use crate::error::{Error, Result};
use crate::sink::Target;
use crate::sink::reader::FileItems;

/// Commits tried before a run gives up.
pub(super) const ATTEMPTS: u32 = 5;

/// A commit ready to be put, and what decides whether it still holds at a later version.
pub(super) struct Prepared {
    pub commit: Commit,
    /// Log paths of the live files it removes; `None`: all of them (a full refresh).
    pub removes: Option<HashSet<String>>,
    /// For a MERGE: the keys it changes.
    pub changed: Option<ChangedKeys>,
}

/// The keys a MERGE changes, and how to read key columns.
pub(super) struct ChangedKeys {
    /// The key attributes.
    pub names: Vec<String>,
    /// The table's columns, for files without ddbsnap's column metadata.
    pub columns: Columns,
    /// Each changed key, by [`key_text`].
    pub keys: HashSet<String>,
    /// The table's physical column names, when it maps columns.
    pub physical: Option<crate::sink::physical::PhysicalNames>,
}

impl Prepared {
    fn removes(&self, path: &str) -> bool {
        self.removes.as_ref().is_none_or(|r| r.contains(path))
    }
}

/// What the commits a run lost to did.
#[derive(Debug, Default)]
struct Winners {
    removed: HashSet<String>,
    added: Vec<TableFile>,
    metadata: bool,
}

/// Put the commit `prepare` makes against `delta`, as the module documentation says.
pub(super) fn commit(
    delta: &Delta<'_>,
    prepare: &dyn Fn(&Delta<'_>) -> Result<Prepared>,
) -> Result<DeltaCommit> {
    let mut at = delta.latest_as_is();
    let mut prepared = prepare(&at)?;
    for attempt in 1..=ATTEMPTS {
        let conflict = match at.try_commit(&prepared.commit, &|p| prepared.removes(p))? {
            Attempt::Done(mut done) => {
                done.attempts = attempt;
                return Ok(done);
            }
            Attempt::Conflict(version) => version,
        };
        if attempt == ATTEMPTS {
            return Err(gave_up(delta.table, conflict));
        }
        let next = at.latest()?;
        let winners = winners(&at, next.snapshot.version())?;
        if !still_holds(&next, &prepared, &winners)? {
            prepared = prepare(&next)?;
        }
        at = next;
    }
    Err(Error::Internal("no commit attempt was made".into()))
}

/// True when `prepared` can be put unchanged after the commits `winners` did.
fn still_holds(delta: &Delta<'_>, prepared: &Prepared, winners: &Winners) -> Result<bool> {
    let Some(removes) = &prepared.removes else {
        return Ok(true);
    };
    if winners.metadata || winners.removed.iter().any(|p| removes.contains(p)) {
        return Ok(false);
    }
    let Some(changed) = &prepared.changed else {
        return Ok(true);
    };
    for file in &winners.added {
        if holds_any(delta, file, changed)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True when `file` has a row whose key `changed` changes (only its key columns are read).
pub(super) fn holds_any(
    delta: &Delta<'_>,
    file: &TableFile,
    changed: &ChangedKeys,
) -> Result<bool> {
    let (folder, name) = open_at(delta.table, file)?;
    let mut rows = delta.handle.block_on(FileItems::open_with(
        &folder,
        &name,
        Some(&changed.names),
        Some(&changed.columns),
        changed.physical.as_ref(),
    ))?;
    while let Some(batch) = delta.handle.block_on(rows.next_batch())? {
        for row in &batch {
            if changed.keys.contains(&key_text(row, &changed.names)?) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// What the commits after `delta`'s version, up to `latest`, removed and added.
fn winners(delta: &Delta<'_>, latest: u64) -> Result<Winners> {
    let mut won = Winners::default();
    for version in delta.snapshot.version() + 1..=latest {
        for action in delta.handle.block_on(super::log::actions(
            delta.table,
            delta.store,
            delta.log,
            version,
        ))? {
            if let Some(path) = action["remove"]["path"].as_str() {
                won.removed.insert(path.to_owned());
            }
            if let Some(path) = action["add"]["path"].as_str() {
                won.added.push(TableFile {
                    path: path.to_owned(),
                    size: action["add"]["size"].as_i64().unwrap_or(0),
                });
            }
            won.metadata |= action.get("metaData").is_some() || action.get("protocol").is_some();
        }
    }
    Ok(won)
}

/// The error of a run that lost every try to other writers.
fn gave_up(table: &Target, version: u64) -> Error {
    Error::Destination {
        url: table.url().to_owned(),
        message: format!(
            "other writers kept committing first ({} tries; version {version} was the last \
             taken); this run's files are kept: run the same command again with --resume to \
             commit them as the next version",
            ATTEMPTS
        ),
        source: None,
    }
}
