//! ddbsnap's record of its own runs in a Delta table's log.
//!
//! Every commit ddbsnap makes carries `commitInfo.ddbsnap`: the run's manifest without its file
//! list (mode, table and key schema, window and watermark of a timestamp pull, the export's
//! summary, counts), plus the run's folder and the table's inferred shape after the commit.
//! `--since last` continues from the latest record's coverage (see [`crate::window`]), a change
//! set is admitted only when it continues it, and a MERGE starts its schema
//! inference from the latest record's shape, so a change set never narrows a column.
//!
//! `commitInfo` is not part of a table's state (log replay and checkpoints drop it), so the
//! kernel does not expose it: the record is read from the JSON commit files directly, newest
//! first, going back past commits other writers made (OPTIMIZE, VACUUM) until a ddbsnap one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;

use crate::convert::TableShape;
use crate::error::{Error, Result};
use crate::manifest::Watermark;
use crate::sink::Target;
use crate::source::export::ExportSummary;
use crate::window::Coverage;

/// What a ddbsnap commit recorded about its run (the fields later runs use).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Record {
    /// The run's folder under the table root.
    pub run: String,
    /// `scan`, `export` or `apply`.
    pub mode: crate::mode::RunMode,
    /// The window and watermark of a timestamp pull.
    #[serde(default)]
    pub watermark: Option<Watermark>,
    /// The export a conversion read.
    #[serde(default)]
    pub export: Option<ExportSummary>,
    /// The table's inferred shape after the commit.
    #[serde(default)]
    pub shape: Option<TableShape>,
    /// When the run started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// What the table holds after the commit (absent in commits of earlier versions).
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// When the run that last read the whole table started (absent in earlier commits).
    #[serde(default)]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// What the table has read of its DynamoDB stream (tables `sync` keeps).
    #[serde(default)]
    pub stream: Option<crate::source::stream::StreamState>,
    /// How the run wrote its files (the number mapping of the table's columns).
    #[serde(default)]
    pub options: RecordOptions,
    /// The record as written: a commit that does not change what the table holds (a
    /// compaction) carries it on unchanged.
    #[serde(skip)]
    pub text: String,
}

/// The output options a record keeps.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RecordOptions {
    /// How numbers map to columns.
    #[serde(default)]
    pub numbers: crate::convert::NumberMode,
}

impl Record {
    /// When the whole table was last read into the table state this commit made: as recorded,
    /// or the time of the full read the commit is.
    pub(crate) fn last_refresh(&self) -> Option<DateTime<Utc>> {
        (self.refreshed_at).or_else(|| crate::manifest::full_read_at(self.coverage().as_ref()))
    }

    /// What the table holds after this commit: as recorded, or, for a commit made before
    /// ddbsnap recorded it, as its mode, window and export say. `None` for a commit whose run
    /// says nothing of time (none ddbsnap makes).
    pub(crate) fn coverage(&self) -> Option<Coverage> {
        self.coverage.clone().or_else(|| {
            crate::manifest::derive_coverage(
                self.mode,
                self.watermark.as_ref(),
                self.export.as_ref(),
                self.started_at,
            )
        })
    }
}

/// The record of the latest ddbsnap commit at or before log version `version`, with its
/// version; `None` when no JSON commit back to version 0 (or to the first one log cleanup
/// left) is ddbsnap's.
pub(crate) async fn latest_record(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    version: u64,
) -> Result<Option<(u64, Record)>> {
    for v in (0..=version).rev() {
        let path = log.clone().join(format!("{v:020}.json"));
        let body = match store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| table.error(&format!("reading Delta log version {v}"), e))?,
            // Cleaned up after a checkpoint: nothing older is left either.
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(table.error(&format!("reading Delta log version {v}"), e)),
        };
        if let Some(record) = record_in(&body).map_err(|e| Error::Destination {
            url: table.url().to_owned(),
            message: format!("Delta log version {v} is damaged: {e}"),
            source: None,
        })? {
            return Ok(Some((v, record)));
        }
    }
    Ok(None)
}

/// The actions of the JSON commit of log version `version`, one JSON value each.
pub(crate) async fn actions(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    version: u64,
) -> Result<Vec<serde_json::Value>> {
    let doing = format!("reading Delta log version {version}");
    let path = log.clone().join(format!("{version:020}.json"));
    let body = store
        .get(&path)
        .await
        .map_err(|e| table.error(&doing, e))?
        .bytes()
        .await
        .map_err(|e| table.error(&doing, e))?;
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| Error::Destination {
                url: table.url().to_owned(),
                message: format!("Delta log version {version} is damaged: {e}"),
                source: None,
            })
        })
        .collect()
}

/// The ddbsnap record in one commit file's actions, if it has one.
fn record_in(body: &[u8]) -> std::result::Result<Option<Record>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let action: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if let Some(info) = action.get("commitInfo") {
            return match info.get("ddbsnap").and_then(|d| d.as_str()) {
                Some(text) => serde_json::from_str(text)
                    .map(|record| {
                        Some(Record {
                            text: text.to_owned(),
                            ..record
                        })
                    })
                    .map_err(|e| format!("its ddbsnap record: {e}")),
                None => Ok(None),
            };
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_in_commit_info_only() {
        let ours = serde_json::json!({"commitInfo": {
            "operation": "MERGE",
            "ddbsnap": serde_json::json!({"run": "run=1", "mode": "scan"}).to_string(),
        }});
        let body = format!("{ours}\n{}\n", serde_json::json!({"add": {"path": "x"}}));
        let record = record_in(body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            (record.run.as_str(), record.mode.as_str()),
            ("run=1", "scan")
        );
        assert!(record.shape.is_none() && record.watermark.is_none());
        let theirs = serde_json::json!({"commitInfo": {"operation": "OPTIMIZE"}});
        assert!(
            record_in(format!("{theirs}\n").as_bytes())
                .unwrap()
                .is_none()
        );
        assert!(record_in(b"{\"add\":{}}\n").unwrap().is_none());
        assert!(record_in(b"not json\n").is_err());
    }
}
