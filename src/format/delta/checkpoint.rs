//! Log checkpoints: every `delta.checkpointInterval` versions (10 unless the table sets it, as
//! Delta's own writers do) ddbsnap writes the checkpoint of the version it committed, through
//! the kernel's own checkpoint writer, which also writes `_last_checkpoint`. Readers then
//! replay at most that many JSON commits, whatever the table's age. A checkpoint is an
//! optimization: the commit counts once it is in the log, so a checkpoint that fails is a
//! warning, and the next due version writes one again. After a checkpoint, the log is cleaned
//! up (see [`super::cleanup`]).

use std::num::NonZero;
use std::sync::Arc;

use delta_kernel::snapshot::{CheckpointWriteResult, Snapshot};
use delta_kernel_default_engine::DefaultEngineBuilder;
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::runtime::{Handle, RuntimeFlavor};
use url::Url;

use super::cleanup::{DEFAULT_LOG_RETENTION, clean_log};

/// Versions between checkpoints when the table does not say (`delta.checkpointInterval`).
const DEFAULT_INTERVAL: u64 = 10;

/// What a commit's log upkeep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LogUpkeep {
    /// The checkpoint of the committed version was written.
    pub checkpoint: bool,
    /// Expired log files removed after it.
    pub removed: usize,
}

/// Write the checkpoint of `version` of the table at `url` (in `store`, its log at `log`) when
/// it is due, then clean up the log (not due: nothing done; a checkpoint there already: not
/// written again). Runs on a blocking thread of the runtime `handle`: the kernel's checkpoint
/// writer needs a multi-threaded executor (the run's runtime when it is one, else one of its
/// own).
pub(super) fn upkeep(
    store: Arc<dyn ObjectStore>,
    url: &Url,
    log: &Path,
    version: u64,
    handle: &Handle,
) -> Result<LogUpkeep, String> {
    if version == 0 {
        return Ok(LogUpkeep::default());
    }
    let executor = match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => TokioMultiThreadExecutor::new(handle.clone()),
        _ => TokioMultiThreadExecutor::new_owned_runtime(Some(1), Some(2))
            .map_err(|e| e.to_string())?,
    };
    let engine = DefaultEngineBuilder::new(Arc::clone(&store))
        .with_task_executor(Arc::new(executor))
        .build();
    let engine = &engine;
    let snapshot = Snapshot::builder_for(url.as_str())
        .at_version(version)
        .build(engine)
        .map_err(|e| e.to_string())?;
    let properties = snapshot.table_properties().clone();
    let interval = properties
        .checkpoint_interval
        .map_or(DEFAULT_INTERVAL, NonZero::get);
    if !version.is_multiple_of(interval) {
        return Ok(LogUpkeep::default());
    }
    let (written, _) = snapshot
        .checkpoint(engine, None)
        .map_err(|e| e.to_string())?;
    let mut done = LogUpkeep {
        checkpoint: written == CheckpointWriteResult::Written,
        removed: 0,
    };
    if properties.enable_expired_log_cleanup != Some(false) {
        let retention = properties
            .log_retention_duration
            .unwrap_or(DEFAULT_LOG_RETENTION);
        done.removed = handle
            .block_on(clean_log(&store, log, retention))
            .map_err(|e| format!("the checkpoint is written, but log cleanup failed: {e}"))?;
    }
    Ok(done)
}
