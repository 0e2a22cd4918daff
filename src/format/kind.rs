//! One kind of table per folder: a Delta table, a snapshot folder and a dataset of incremental
//! pulls never share one, so every reader of a folder reads what it expects.

use super::{DELTA_LOG, TableFormat};
use crate::error::{Error, Result};
use crate::sink::{CHECKPOINT_FILE, MANIFEST_FILE, RUN_PREFIX, Target, is_data_file_name};

/// The kinds of table a folder can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A Delta table: `_delta_log/`.
    Delta,
    /// A snapshot folder: `_manifest.json`, `_checkpoint.json`, data files or `_shards/`.
    Snapshot,
    /// A dataset of incremental pulls: `run=` folders with `_manifest.json`.
    Pulls,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Delta => "a Delta table (_delta_log/)",
            Kind::Snapshot => "a Parquet snapshot (_manifest.json, _checkpoint.json or data files)",
            Kind::Pulls => "a dataset of incremental pulls (run= folders with _manifest.json)",
        }
    }
}

/// Refuse, before anything is written, to write a table of one kind into a folder that holds
/// another: a run published as `format` (`pulls`: an incremental pull, whose runs are `run=`
/// folders of `root`) into `root`. One kind of table per folder, so every reader of the folder
/// reads what it expects.
pub(crate) async fn check_kind(root: &Target, format: TableFormat, pulls: bool) -> Result<()> {
    let wanted = match (format, pulls) {
        (TableFormat::Delta, _) => Kind::Delta,
        (TableFormat::Snapshot, true) => Kind::Pulls,
        (TableFormat::Snapshot, false) => Kind::Snapshot,
    };
    let Some(found) = kind_of(root).await? else {
        return Ok(());
    };
    if found == wanted {
        return Ok(());
    }
    let fix = match (wanted, found) {
        (Kind::Snapshot | Kind::Pulls, Kind::Delta) => {
            "add --format delta to update the table, or choose another location"
        }
        (Kind::Delta, _) => "write the Delta table to a folder of its own",
        _ => "choose another location",
    };
    Err(Error::AlreadyExists {
        url: root.url().to_owned(),
        what: format!(
            "holds {}, not {}; {fix}",
            found.describe(),
            match wanted {
                Kind::Delta => "a Delta table",
                Kind::Snapshot => "a snapshot folder",
                Kind::Pulls => "a dataset of incremental pulls",
            }
        ),
    })
}

/// The kind of table `root` holds, if any.
async fn kind_of(root: &Target) -> Result<Option<Kind>> {
    let (files, folders) = root.top_level().await?;
    if folders.iter().any(|f| f == DELTA_LOG) {
        return Ok(Some(Kind::Delta));
    }
    let snapshot_file = |name: &str| {
        name == MANIFEST_FILE
            || name == CHECKPOINT_FILE
            || is_data_file_name(name.split('#').next().unwrap_or(name))
    };
    if files.iter().any(|f| snapshot_file(f))
        || folders
            .iter()
            .any(|f| f == crate::shard::SHARDS_DIR || f == crate::sink::STAGING_DIR)
    {
        return Ok(Some(Kind::Snapshot));
    }
    if folders.iter().any(|f| f.starts_with(RUN_PREFIX))
        && root.runs().await?.iter().any(|r| r.committed)
    {
        return Ok(Some(Kind::Pulls));
    }
    Ok(None)
}
