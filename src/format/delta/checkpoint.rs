//! Log checkpoints: every `delta.checkpointInterval` versions (10 unless the table sets it, as
//! Delta's own writers do) ddbsnap writes the checkpoint of the version it committed, through
//! the kernel's own checkpoint writer, which also writes `_last_checkpoint`. Readers then
//! replay at most that many JSON commits, whatever the table's age. A checkpoint is an
//! optimization: the commit counts once it is in the log, so a checkpoint that fails is a
//! warning, and the next due version writes one again.

use std::num::NonZero;
use std::sync::Arc;

use delta_kernel::snapshot::{CheckpointWriteResult, Snapshot};
use delta_kernel_default_engine::DefaultEngineBuilder;
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use object_store::ObjectStore;
use tokio::runtime::{Handle, RuntimeFlavor};
use url::Url;

/// Versions between checkpoints when the table does not say (`delta.checkpointInterval`).
const DEFAULT_INTERVAL: u64 = 10;

/// Write the checkpoint of `version` of the table at `url` (in `store`) when it is due.
/// Returns whether one was written (`false` when not due, or when one is there already). Runs
/// on a blocking thread of the runtime `handle`: the kernel's checkpoint writer needs a
/// multi-threaded executor (the run's runtime when it is one, else one of its own).
pub(super) fn checkpoint_if_due(
    store: Arc<dyn ObjectStore>,
    url: &Url,
    version: u64,
    handle: &Handle,
) -> delta_kernel::KernelResult<bool> {
    if version == 0 {
        return Ok(false);
    }
    let executor = match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => TokioMultiThreadExecutor::new(handle.clone()),
        _ => TokioMultiThreadExecutor::new_owned_runtime(Some(1), Some(2))
            .map_err(delta_kernel::KernelError::generic_err)?,
    };
    let engine = DefaultEngineBuilder::new(store)
        .with_task_executor(Arc::new(executor))
        .build();
    let engine = &engine;
    let snapshot = Snapshot::builder_for(url.as_str())
        .at_version(version)
        .build(engine)?;
    let interval = snapshot
        .table_properties()
        .checkpoint_interval
        .map_or(DEFAULT_INTERVAL, NonZero::get);
    if !version.is_multiple_of(interval) {
        return Ok(false);
    }
    let (written, _) = snapshot.checkpoint(engine, None)?;
    Ok(written == CheckpointWriteResult::Written)
}
