//! Change sets: the latest change per primary key.
//!
//! A change set is a run's output read back by key: a converted incremental export (a change
//! log with `_op`, `_write_time` and `_old` beside the new image) or the items of a timestamp
//! pull (each a new image). Per key the row with the latest `_write_time` wins (a row without
//! one, as in a pull, is newer than nothing and a later row replaces it); `_op = delete`
//! removes the key. `apply` (a new snapshot) and a Delta MERGE (a new table version) both apply
//! one. Memory holds one row per changed key.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as AV;
use tokio::runtime::Handle;

use crate::convert::Item;
use crate::error::{Error, Result};
use crate::sink::Target;
use crate::sink::reader::FileItems;
use crate::source::export::CHANGE_COLUMNS;

/// The latest change of every key in a change set, by [`key_text`].
#[derive(Debug, Default)]
pub(crate) struct ChangeSet {
    latest: HashMap<String, Item>,
    /// The rows are appended to a table of changes as they are (keyed by their `_seq`): none
    /// deletes, none loses its change-log columns.
    log: bool,
}

impl ChangeSet {
    /// Read the data files `files` of the run at `run` (on a blocking thread).
    pub(crate) fn read(
        run: &Target,
        files: &[crate::sink::DataFile],
        keys: &[String],
        handle: &Handle,
    ) -> Result<Self> {
        Self::read_into(ChangeSet::default(), run, files, keys, handle)
    }

    /// Read the data files `files` of the run at `run` as rows to append as they are, keyed
    /// by `keys` (a stream record's `_seq`).
    pub(crate) fn read_log(
        run: &Target,
        files: &[crate::sink::DataFile],
        keys: &[String],
        handle: &Handle,
    ) -> Result<Self> {
        let set = ChangeSet {
            log: true,
            ..ChangeSet::default()
        };
        Self::read_into(set, run, files, keys, handle)
    }

    fn read_into(
        mut set: ChangeSet,
        run: &Target,
        files: &[crate::sink::DataFile],
        keys: &[String],
        handle: &Handle,
    ) -> Result<Self> {
        for file in files {
            let mut rows = handle.block_on(FileItems::open(run, &file.path))?;
            while let Some(batch) = handle.block_on(rows.next_batch())? {
                for row in batch {
                    set.add(key_text(&row, keys)?, row);
                }
            }
        }
        Ok(set)
    }

    /// Keep `row` as the change of `key` unless a later one is already there.
    fn add(&mut self, key: String, row: Item) {
        match self.latest.get(&key) {
            Some(seen) if write_time(&row) < write_time(seen) => {}
            _ => {
                self.latest.insert(key, row);
            }
        }
    }

    /// The keys it changes, by [`key_text`].
    pub(crate) fn keys(&self) -> std::collections::HashSet<String> {
        self.latest.keys().cloned().collect()
    }

    /// True when nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The change of `key`: `Some(true)` a delete, `Some(false)` a new image, `None` unchanged.
    pub(crate) fn deletes(&self, key: &str) -> Option<bool> {
        self.latest.get(key).map(|row| !self.log && is_delete(row))
    }

    /// True when `key` changed.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.latest.contains_key(key)
    }

    /// The new images (deleted keys left out, the change log's own columns removed; of a log,
    /// every row as it is), in key order, with their keys.
    pub(crate) fn into_images(self) -> Vec<(String, Item)> {
        let log = self.log;
        let mut images: Vec<(String, Item)> = self
            .latest
            .into_iter()
            .filter(|(_, row)| log || !is_delete(row))
            .map(|(key, mut row)| {
                for column in CHANGE_COLUMNS.iter().filter(|_| !log) {
                    row.remove(*column);
                }
                (key, row)
            })
            .collect();
        images.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        images
    }
}

fn write_time(row: &Item) -> i128 {
    match row.get("_write_time") {
        Some(AV::N(n)) => n.parse::<i128>().unwrap_or(i128::MIN),
        _ => i128::MIN,
    }
}

fn is_delete(row: &Item) -> bool {
    matches!(row.get("_op"), Some(AV::S(op)) if op == "delete")
}

/// The primary key of an item as text, equal for equal keys whatever column type they were
/// stored with (numbers in DynamoDB's canonical form).
pub(crate) fn key_text(item: &Item, keys: &[String]) -> Result<String> {
    let mut text = String::new();
    for k in keys {
        let value = item.get(k).ok_or_else(|| Error::Unrepresentable {
            path: k.clone(),
            message: "a row has no value for this key attribute; check --key".into(),
        })?;
        match value {
            AV::N(n) => {
                let canonical = crate::convert::number::Decimal::parse(n)
                    .map(|d| d.canonical())
                    .unwrap_or_else(|| n.clone());
                text.push_str("N:");
                text.push_str(&canonical);
            }
            other => text.push_str(&crate::convert::json::value_to_json(other)?),
        }
        text.push('\u{1f}');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, op: &str, time: u64) -> Item {
        [
            ("pk".to_string(), AV::S(key.into())),
            ("_op".into(), AV::S(op.into())),
            ("_write_time".into(), AV::N(time.to_string())),
            ("v".into(), AV::N(time.to_string())),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn the_latest_write_wins_whatever_the_order() {
        let keys = ["pk".to_string()];
        let mut set = ChangeSet::default();
        for r in [
            row("a", "update", 20),
            row("a", "update", 10),
            row("b", "insert", 5),
            row("b", "delete", 6),
            row("c", "delete", 1),
            row("c", "insert", 2),
        ] {
            set.add(key_text(&r, &keys).unwrap(), r);
        }
        let a = key_text(&row("a", "", 0), &keys).unwrap();
        assert_eq!(set.deletes(&a), Some(false));
        assert_eq!(set.deletes("nothing"), None);
        let images = set.into_images();
        let got: Vec<(&str, &str)> = images
            .iter()
            .map(|(_, item)| match (&item["pk"], &item["v"]) {
                (AV::S(k), AV::N(v)) => (k.as_str(), v.as_str()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, [("a", "20"), ("c", "2")]);
        assert!(images.iter().all(|(_, i)| !i.contains_key("_op")));
    }

    #[test]
    fn number_keys_match_across_representations() {
        let keys = ["n".to_string()];
        let item = |n: &str| -> Item { [("n".to_string(), AV::N(n.into()))].into() };
        let a = key_text(&item("10"), &keys).unwrap();
        assert_eq!(a, key_text(&item("10.0"), &keys).unwrap());
        assert_eq!(a, key_text(&item("1E+1"), &keys).unwrap());
        assert_ne!(a, key_text(&item("100"), &keys).unwrap());
        let s: Item = [("n".to_string(), AV::S("10".into()))].into();
        assert_ne!(a, key_text(&s, &keys).unwrap());
    }
}
