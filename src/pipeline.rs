//! Wires source → convert → sink and commits.
//!
//! ```text
//! scan task × concurrency ──Msg::Page──> bounded channel ──> conversion thread
//!                                                             observe shape, encode, Parquet
//!                                                             rolling files (uploads async)
//! all segments done ──Msg::End──> close last file ──> re-encode early files if the schema
//! widened after them ──> write _manifest.json (the commit)
//! ```
//!
//! Schema: the first [`SAMPLE_PAGES`] pages are held back and observed before the first file
//! is opened, so the first files already have the settled schema in most tables. When a later
//! item widens the schema (a new attribute, a number needing a wider type, a type conflict),
//! the open file is closed and a new one started; at the end, every file whose schema differs
//! from the final one is read back and re-encoded, so all files share one schema.
//!
//! Failure: any error stops the scan, aborts the open upload and leaves no manifest.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use object_store::ObjectStoreExt;
use parquet::file::metadata::KeyValue;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::config::SnapshotConfig;
use crate::convert::{Columns, Item, NumberMode, TableShape, arrow_schema};
use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FORMAT, Manifest, ManifestSchema, OutputOptions};
use crate::plan::{TableInfo, auto_segments};
use crate::progress::{Progress, ProgressEvent};
use crate::sink::reader::FileItems;
use crate::sink::writer::{RollingWriter, WriterOptions, file_path};
use crate::sink::{DataFile, MANIFEST_FILE, Target};
use crate::source::scan::{Msg, ScanJob, SegmentEnd};
use crate::throttle::{ReadBudget, Throttle};

/// Pages observed before the first file is opened (each page is at most 1 MB of items).
pub const SAMPLE_PAGES: usize = 4;
/// Rows per encoded batch when flushing held-back items.
const BATCH_ROWS: usize = 8192;

/// What a finished snapshot run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Snapshot root.
    pub url: String,
    /// Table name.
    pub table: String,
    /// Items written.
    pub items: u64,
    /// Items read by the scan.
    pub items_scanned: u64,
    /// Data files.
    pub files: usize,
    /// Total bytes of the data files.
    pub bytes: u64,
    /// Read capacity consumed.
    pub consumed_rcu: f64,
    /// Scan pages.
    pub pages: u64,
    /// Segments (TotalSegments).
    pub segments: u32,
    /// The read budget and where it came from.
    pub read_budget: ReadBudget,
    /// Segments scanned at once.
    pub concurrency: u32,
    /// Scan requests DynamoDB throttled (each retried).
    pub throttled_requests: u64,
    /// Scan requests retried (throttled or failed).
    pub retried_requests: u64,
    /// Files re-encoded because the schema widened after they were written.
    pub files_rewritten: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Snapshot a table as configured: load AWS configuration, open the destination, scan, write,
/// commit.
pub async fn snapshot(config: &SnapshotConfig, progress: Arc<dyn Progress>) -> Result<Summary> {
    snapshot_until(config, progress, CancellationToken::new()).await
}

/// [`snapshot`], stopping cleanly when `cancel` fires before the commit: the scan stops, the
/// upload in progress is aborted, no manifest is written, and [`Error::Interrupted`] returned.
pub async fn snapshot_until(
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let started = (Instant::now(), Utc::now());
    let aws = AwsContext::load(&config.aws).await?;
    // The table first: a wrong name or region must not leave an empty destination behind.
    let table = TableInfo::describe(&aws, &config.table).await?;
    let target = Target::open(&config.destination, Some(&aws.sdk), &config.s3).await?;
    run(&aws, table, target, config, progress, cancel, started).await
}

/// Snapshot into an already opened [`Target`] (any `object_store`), with a loaded AWS context.
pub async fn snapshot_to(
    aws: &AwsContext,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
) -> Result<Summary> {
    let started = (Instant::now(), Utc::now());
    let table = TableInfo::describe(aws, &config.table).await?;
    run(
        aws,
        table,
        target,
        config,
        progress,
        CancellationToken::new(),
        started,
    )
    .await
}

async fn run(
    aws: &AwsContext,
    table: TableInfo,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    (started, started_at): (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    target.prepare(config.overwrite).await?;

    let segments = config
        .segments
        .unwrap_or_else(|| auto_segments(table.size_bytes));
    let budget = ReadBudget::plan(&table, config.read_fraction, config.max_rcu);
    // An explicit --concurrency is honoured; otherwise the budget decides how many segments
    // are worth running at once.
    let concurrency = match config.concurrency {
        Some(c) => c,
        None => budget.concurrency(crate::config::DEFAULT_MAX_CONCURRENCY),
    }
    .min(segments)
    .max(1);
    let item_bytes = match (table.size_bytes, table.item_count) {
        (Some(size), Some(count)) if size > 0 && count > 0 => Some(size as f64 / count as f64),
        _ => None,
    };
    let throttle = Arc::new(Throttle::new(
        budget.rcu_per_second,
        item_bytes,
        config.consistent_read,
    ));
    progress.event(&ProgressEvent::Started {
        table: table.name.clone(),
        segments,
        estimated_items: table.item_count.filter(|&n| n > 0).map(|n| n as u64),
        budget: budget.clone(),
        concurrency,
    });

    let shape = TableShape::with_keys(
        table
            .key_schema
            .iter()
            .map(|k| (k.name.as_str(), k.attribute_type)),
    );
    let writer_opts = WriterOptions {
        compression: config.compression,
        zstd_level: config.zstd_level,
        target_file_bytes: config.target_file_bytes,
        row_group_bytes: config.row_group_bytes,
        part_bytes: config.part_bytes,
        metadata: file_metadata(&table)?,
    };
    let (tx, rx) = mpsc::channel::<Msg>(concurrency as usize);
    let writer = RollingWriter::new(
        target.clone(),
        Handle::current(),
        writer_opts.clone(),
        Arc::clone(&progress),
        0,
    );
    let numbers = config.numbers;
    let converter = tokio::task::spawn_blocking(move || convert_pages(rx, shape, numbers, writer));

    let job = ScanJob {
        aws: aws.clone(),
        table: Arc::from(table.name.as_str()),
        total_segments: segments,
        consistent_read: config.consistent_read,
        permits: Arc::new(Semaphore::new(concurrency as usize)),
        tx,
        progress: Arc::clone(&progress),
        throttle: Arc::clone(&throttle),
        retry_timeout: config.retry_timeout,
    };
    let mut tasks = JoinSet::new();
    for segment in 0..segments {
        tasks.spawn(job.clone().run(segment));
    }
    let tx = job.tx;
    let mut scan_error = None;
    loop {
        let joined = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                scan_error = Some(Error::Interrupted { url: target.url.clone() });
                break;
            }
            joined = tasks.join_next() => match joined {
                Some(joined) => joined,
                None => break,
            },
        };
        match joined {
            Ok(Ok(SegmentEnd::Done)) => {}
            Ok(Ok(SegmentEnd::Stopped)) => break,
            Ok(Err(e)) => {
                scan_error = Some(e);
                break;
            }
            Err(e) => {
                scan_error = Some(Error::Internal(format!("scan task failed: {e}")));
                break;
            }
        }
    }
    tasks.abort_all();
    if scan_error.is_none() && tasks.is_empty() {
        // Every segment finished: tell the converter it may commit.
        let _ = tx.send(Msg::End).await;
    }
    drop(tx);
    let converted = converter
        .await
        .map_err(|e| Error::Internal(format!("conversion thread failed: {e}")));
    if let Some(e) = scan_error {
        return Err(e);
    }
    let Converted {
        mut files,
        shape,
        stats,
    } = converted??;

    let columns = shape.resolve(numbers);
    let stale: Vec<DataFile> = files
        .iter()
        .filter(|f| f.columns != columns)
        .cloned()
        .collect();
    let files_rewritten = stale.len();
    if !stale.is_empty() {
        progress.event(&ProgressEvent::Rewriting { files: stale.len() });
        let next_index = files.len();
        let rewriter = RollingWriter::new(
            target.clone(),
            Handle::current(),
            writer_opts,
            Arc::clone(&progress),
            next_index,
        );
        let cols = columns.clone();
        let stale_files = stale.clone();
        let rewritten = tokio::task::spawn_blocking(move || rewrite(rewriter, &stale_files, &cols))
            .await
            .map_err(|e| Error::Internal(format!("rewrite thread failed: {e}")))??;
        for f in &stale {
            target.delete(&file_path(&target, f)).await?;
        }
        files.retain(|f| f.columns == columns);
        files.extend(rewritten);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        ddbsnap_version: env!("CARGO_PKG_VERSION").to_owned(),
        region: aws.region.clone(),
        mode: "scan".to_owned(),
        filter: None,
        started_at,
        finished_at: Utc::now(),
        segments,
        consistent_read: config.consistent_read,
        items_scanned: stats.items_scanned,
        items_written: stats.items_written,
        pages: stats.pages,
        consumed_rcu: stats.consumed_rcu,
        read_budget: budget,
        throttled_requests: throttle.counts().0,
        retried_requests: throttle.counts().1,
        watermark: None,
        schema: ManifestSchema {
            arrow: arrow_schema(&columns).as_ref().clone(),
            columns,
        },
        options: OutputOptions {
            compression: config.compression,
            zstd_level: (config.compression == crate::sink::Compression::Zstd)
                .then_some(config.zstd_level),
            numbers,
        },
        files,
        table,
    };
    if cancel.is_cancelled() {
        return Err(Error::Interrupted {
            url: target.url.clone(),
        });
    }
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
    target
        .store
        .put(&target.path(MANIFEST_FILE), body.into())
        .await
        .map_err(|e| target.error("writing _manifest.json", e))?;
    progress.event(&ProgressEvent::Committed {
        url: target.url.clone(),
    });
    Ok(Summary {
        url: target.url.clone(),
        table: manifest.table.name.clone(),
        items: stats.items_written,
        items_scanned: stats.items_scanned,
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        consumed_rcu: stats.consumed_rcu,
        pages: stats.pages,
        segments,
        read_budget: manifest.read_budget.clone(),
        concurrency,
        throttled_requests: manifest.throttled_requests,
        retried_requests: manifest.retried_requests,
        files_rewritten,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn file_metadata(table: &TableInfo) -> Result<Vec<KeyValue>> {
    let key_schema = serde_json::to_string(&table.key_schema)
        .map_err(|e| Error::Internal(format!("serializing the key schema: {e}")))?;
    Ok(vec![
        KeyValue::new("ddbsnap.table".to_owned(), table.name.clone()),
        KeyValue::new("ddbsnap.key_schema".to_owned(), key_schema),
        KeyValue::new(
            "ddbsnap.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

#[derive(Debug, Default)]
struct Stats {
    items_scanned: u64,
    items_written: u64,
    pages: u64,
    consumed_rcu: f64,
}

struct Converted {
    files: Vec<DataFile>,
    shape: TableShape,
    stats: Stats,
}

/// The conversion thread: observe, encode and write every page; commit-ready only on
/// [`Msg::End`].
fn convert_pages(
    mut rx: mpsc::Receiver<Msg>,
    mut shape: TableShape,
    numbers: NumberMode,
    mut writer: RollingWriter,
) -> Result<Converted> {
    let mut stats = Stats::default();
    let mut held: Vec<Item> = Vec::new();
    let mut held_pages = 0usize;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Page(page)) => {
                stats.pages += 1;
                stats.items_scanned += page.scanned;
                stats.consumed_rcu += page.consumed_rcu;
                // On any error the writer is dropped, which aborts its upload.
                let items = page.into_items()?;
                stats.items_written += items.len() as u64;
                for item in &items {
                    shape.observe(item)?;
                }
                if held_pages < SAMPLE_PAGES {
                    held.extend(items);
                    held_pages += 1;
                    if held_pages == SAMPLE_PAGES {
                        write_chunked(&mut writer, &shape.resolve(numbers), &held)?;
                        held = Vec::new();
                    }
                } else if !items.is_empty() {
                    writer.write(&shape.resolve(numbers), &items)?;
                }
            }
            Some(Msg::End) => break,
            None => {
                writer.abort();
                return Err(Error::Internal("the scan stopped before its end".into()));
            }
        }
    }
    let columns = shape.resolve(numbers);
    write_chunked(&mut writer, &columns, &held)?;
    if writer.is_empty() {
        // An empty table still gets one (empty) file carrying the schema, so readers work.
        writer.write(&columns, &[])?;
    }
    let files = writer.finish()?;
    Ok(Converted {
        files,
        shape,
        stats,
    })
}

fn write_chunked(writer: &mut RollingWriter, columns: &Columns, items: &[Item]) -> Result<()> {
    for chunk in items.chunks(BATCH_ROWS) {
        writer.write(columns, chunk)?;
    }
    Ok(())
}

/// Re-encode `stale` files (written with an earlier schema) into `columns`.
fn rewrite(
    mut writer: RollingWriter,
    stale: &[DataFile],
    columns: &Columns,
) -> Result<Vec<DataFile>> {
    let handle = writer.handle().clone();
    let target = writer.target().clone();
    for file in stale {
        let mut items = handle.block_on(FileItems::open(&target, &file.path))?;
        while let Some(batch) = handle.block_on(items.next_batch())? {
            writer.write(columns, &batch)?;
        }
    }
    writer.finish()
}
