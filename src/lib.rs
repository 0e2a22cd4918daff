//! # ddbsnap
//!
//! Snapshot an Amazon DynamoDB table into lossless Parquet, on S3 or local disk, with a
//! segmented parallel Scan — no native export, no PITR needed.
//!
//! ## Design
//!
//! One data flow carries every run (docs/architecture.md draws it with the traits and where
//! each piece of state lives):
//!
//! ```text
//! table ─> plan ─> Producer (Scan segments | export files | apply) ─pages─> conversion lanes
//!   ─> rolling Parquet files ─> commit through the table format's Publisher
//!       (_manifest.json | the next Delta version); a checkpoint after every closed file
//! ```
//!
//! * [`Snapshot`]: the library's way in, a builder run by `.await`.
//! * [`table`]: what DescribeTable says: key schema, size, capacity, indexes (a leaf).
//! * `plan`: the segment count, and what one run scans and where it writes.
//! * [`throttle`]: the read budget (a fraction of the table's capacity), one shared limiter
//!   charged with the real ConsumedCapacity, page sizing, AIMD and backoff.
//! * [`source`]: the segmented Scan (network tasks only move pages), and DynamoDB's native
//!   export: starting and polling it, and reading its data files (DynamoDB JSON or Ion).
//! * [`filter`]: index, projection, raw filters and timestamp windows of a Scan.
//! * [`convert`]: schema inference over every item and exact Arrow encoding (numbers never go
//!   through floating point; conflicting types fall back to DynamoDB JSON text).
//! * `spare`: the buffers of a written page (Scan body, item arena), a few kept for the next
//!   page instead of freed and faulted in again.
//! * [`sink`]: `--to` parsing, the object store (local or S3 with aws-config credentials) and
//!   the rolling Parquet writer (with its per-column dictionary choice).
//! * [`pipeline`]: the one driver every run takes, its producers, the conversion lanes, resume
//!   and the commit.
//! * `checkpoint`: `_checkpoint.json`, saved after every closed file: per part (segment, data
//!   file) the position up to which its items are all in closed files, so `--resume` continues
//!   exactly where a killed or failed run stopped.
//! * [`manifest`]: `_manifest.json`, written last: a snapshot without it is not complete.
//! * [`format`](mod@format): where a finished run is published: a snapshot folder (its manifest), or the
//!   next version of a Delta Lake table (a commit through `delta_kernel`).
//! * [`window`]: change windows: what a change set covers, what a table holds, and whether
//!   one may be applied to the other (in order, no gap, not twice).
//! * [`shard`]: one run split over processes a scheduler starts (`--shard I/N`), published
//!   once by `ddbsnap commit`.
//!
//! Costs: memory is bounded by the channel (one page per running segment), the first
//! [`pipeline::SAMPLE_PAGES`] pages held for schema inference, one row group and the upload
//! parts in flight; it does not grow with the table. Every file of a snapshot has the same
//! schema; files written before a late schema change are re-encoded once at the end.
//!
//! ## Example
//!
//! ```no_run
//! use ddbsnap::{Snapshot, SnapshotConfig};
//!
//! # async fn run() -> ddbsnap::Result<()> {
//! let config = SnapshotConfig::builder("orders", "./snapshots/orders")
//!     .region("eu-west-1")
//!     .segments(8)
//!     .build()?;
//! let summary = Snapshot::new(config).await?;
//! println!("{} items in {} files", summary.items, summary.files);
//! # Ok(()) }
//! ```

#![warn(
    missing_docs,
    unreachable_pub,
    clippy::clone_on_ref_ptr,
    clippy::future_not_send,
    clippy::too_many_lines
)]

#[doc(hidden)]
pub mod app;
pub mod aws;
mod changes;
pub(crate) mod checkpoint;
pub(crate) mod cli;
pub mod config;
pub mod convert;
mod cursor;
pub(crate) mod describe;
pub mod error;
pub mod filter;
pub mod format;
pub mod manifest;
pub mod mode;
pub mod pipeline;
pub(crate) mod plan;
pub mod progress;
pub mod shard;
pub mod sink;
pub mod source;
mod spare;
pub mod table;
pub mod throttle;
mod totals;
pub mod window;

pub use config::{SnapshotConfig, SnapshotConfigBuilder};
pub use error::{Error, ExitKind, Result};
pub use pipeline::{Snapshot, Summary};
pub use tokio_util::sync::CancellationToken;
