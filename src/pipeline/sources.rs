//! Runs whose items do not come from a table scan: converting an export (`convert-export`,
//! `snapshot --mode export`) and merging a change log into a snapshot (`apply`). They share the
//! conversion thread, the rolling files and the commit with a scan; what they add is a set of
//! producers that read files on blocking threads and send batches of items.
//!
//! Resuming: each producer numbers its batches by the items of its source read so far (an
//! export's data file, or the rows of `apply` in a fixed order), which the checkpoint keeps as
//! the position; `--resume` makes producers for what is left and skips that many items.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsContext;
use crate::changes::{ChangeSet, key_text};
use crate::checkpoint::Position;
use crate::config::SnapshotConfig;
use crate::convert::{Item, Rows};
use crate::error::{Error, Result};
use crate::format::TableFormat;
use crate::manifest::Manifest;
use crate::mode::RunMode;
use crate::progress::Progress;
use crate::sink::Target;
use crate::sink::reader::{FileItems, read_manifest};
use crate::source::export::Export;
use crate::source::scan::{Page, PageSink};
use crate::table::{KeyAttribute, TableInfo};

use super::admit::{self, Admitted};
use super::commit_plan::CommitPlan;
use super::driver::drive;
use super::files::{Files, Reader, lines_done};
use super::lanes::BATCH_ROWS;
use super::resume::{Origin, RunContext, leaving_no_trace};
use super::summary::Summary;

/// Data files of an export read at once, at least (one per conversion lane when there are
/// more lanes).
const EXPORT_READERS: usize = 2;

/// Convert the DynamoDB export at `source` (its `.../AWSDynamoDB/<export-id>` directory) into a
/// snapshot at `config.output.destination`, through the same conversion, files and commit as a scan.
/// Reads nothing from the table. `keys` are the table's key attributes, in order (an export
/// does not record them): they become the first columns and the manifest's key schema.
pub async fn convert_export(
    source: &crate::sink::Destination,
    keys: &[String],
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let run = RunContext::new(config, progress, cancel);
    let aws = aws_for(config, &[source, &config.output.destination]).await?;
    let sdk = aws.as_ref().map(|a| &a.s3);
    // The export and the keys first: a wrong location or key must not leave an empty
    // destination behind.
    let export = Export::open(Target::open_source(source, sdk, &config.output.s3).await?).await?;
    let export = check_keys(export, keys).await?;
    leaving_no_trace(&config.output.destination, async {
        let target = Target::open(&config.output.destination, sdk, &config.output.s3).await?;
        let table_keys = recorded_keys(&target, keys, config).await?;
        let described = match table_keys.is_empty()
            && config.output.format == TableFormat::Delta
            && !export.summary.is_incremental()
        {
            true => Some(describe_exported(&export, config).await?),
            false => None,
        };
        let table_keys = match &described {
            Some(table) => table.key_schema.iter().map(|k| k.name.clone()).collect(),
            None => table_keys,
        };
        // Keys taken from the Delta table or DynamoDB are checked against the export too.
        let export = if keys.is_empty() {
            check_keys(export, &table_keys).await?
        } else {
            export
        };
        let target = crate::plan::run_target(target, config, run.started.1).await?;
        let region = aws.as_ref().map(|a| a.region.as_str());
        convert_export_to(region, export, target, &table_keys, described, &run).await
    })
    .await
}

/// The key attributes of a conversion into `root`: for a table that records its keys (a Delta
/// table), those keys (`--key` may be left out; a different `--key` is refused, as a MERGE by
/// other keys would corrupt the table); otherwise `keys` as given.
async fn recorded_keys(
    root: &Target,
    keys: &[String],
    config: &SnapshotConfig,
) -> Result<Vec<String>> {
    match config.output.format.publisher().keys(root).await? {
        Some(table) if keys.is_empty() => Ok(table),
        Some(table) if table != keys => Err(Error::invalid(format!(
            "--key {}: the Delta table at {} is keyed by {}; give --key {} or leave --key out",
            keys.join(","),
            root.url,
            table.join(", "),
            table.join(",")
        ))),
        _ => Ok(keys.to_vec()),
    }
}

/// The exported table as DynamoDB describes it (DescribeTable by the name and region of the
/// export's `tableArn`), for a conversion into a Delta table that neither `--key` nor the
/// table names the key attributes of: a MERGE into it later needs them. An error naming the
/// call when it fails, asking for `--key`.
async fn describe_exported(export: &Export, config: &SnapshotConfig) -> Result<TableInfo> {
    let (Some(name), Some(region)) = (export.summary.table_name(), export.summary.region()) else {
        return Err(Error::invalid(
            "the export's manifest names no table (tableArn) to ask DynamoDB for its key \
             attributes, which a Delta table needs to merge later runs by; give them with \
             --key PK[,SK]",
        ));
    };
    let mut aws = config.aws.clone();
    aws.region = Some(region.to_owned());
    let described = async {
        let aws = AwsContext::load(&aws).await?;
        TableInfo::describe(&aws, name).await
    };
    described.await.map_err(|e| {
        Error::invalid(format!(
            "DescribeTable {name} in {region} (the table of the export's tableArn), to learn \
             the key attributes a Delta table merges by, failed: {e}; give them with --key \
             PK[,SK]"
        ))
    })
}

/// The AWS configuration, loaded only when one of `locations` is on S3: reading and writing
/// local files needs none (no region, no profile, no credentials).
async fn aws_for(
    config: &SnapshotConfig,
    locations: &[&crate::sink::Destination],
) -> Result<Option<AwsContext>> {
    if locations
        .iter()
        .all(|l| matches!(l, crate::sink::Destination::Local(_)))
    {
        return Ok(None);
    }
    AwsContext::load(&config.aws).await.map(Some)
}

/// Convert the opened `export` into a snapshot at `target`. The manifest's
/// region is the exported table's (from its ARN), else `region`.
pub(super) async fn convert_export_to(
    region: Option<&str>,
    export: Export,
    target: Target,
    keys: &[String],
    described: Option<TableInfo>,
    run: &RunContext<'_>,
) -> Result<Summary> {
    let config = run.config;
    let source = export.target.url.clone();
    let export = Arc::new(export);
    let region = export
        .summary
        .region()
        .or(region)
        .unwrap_or("unknown")
        .to_owned();
    let table = match described {
        Some(mut table) => {
            table.item_count = Some(export.item_count() as i64);
            table
        }
        None => declared_table(
            export.summary.table_name().unwrap_or(&config.table),
            export.summary.table_arn.clone(),
            keys,
            Some(export.item_count()),
        ),
    };
    let table_url = || {
        target
            .split_parent()
            .map_or(target.url.clone(), |(t, _)| t.url)
    };
    let window_note = match admit_export(&export, &target, config).await? {
        Admitted::Go(note) => note,
        Admitted::Done(note) => return Ok(Summary::already_applied(&table_url(), &table, note)),
        Admitted::Refresh(gap) => {
            return Err(admit::cannot_refresh(
                &table_url(),
                &gap,
                "an incremental export",
            ));
        }
    };
    // A change log's own columns come right after the keys.
    let first_columns: Vec<String> = keys
        .iter()
        .map(String::as_str)
        .chain(
            export
                .summary
                .is_incremental()
                .then_some(crate::source::export::CHANGE_COLUMNS[..2].iter().copied())
                .into_iter()
                .flatten(),
        )
        .map(str::to_owned)
        .collect();
    // Readers take the next unfinished file until none is left or one fails; a resumed file
    // is read again from its start (for its MD5) but its lines already converted are skipped.
    let files = export.files.len() as u32;
    let items = export.item_count();
    let publish = CommitPlan {
        export: Some(export.summary.clone()),
        ..CommitPlan::new(config, &region, table)
    };
    let readers = move |positions: &[Position], lanes: usize| -> Result<Vec<Reader>> {
        let pending: Vec<(usize, u64)> = positions
            .iter()
            .enumerate()
            .map(|(i, p)| Ok(lines_done(p)?.map(|skip| (i, skip))))
            .filter_map(Result::transpose)
            .collect::<Result<_>>()?;
        let pending = Arc::new(pending);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Ok((0..lanes.max(EXPORT_READERS).min(pending.len()))
            .map(|_| {
                let (export, pending, next) =
                    (Arc::clone(&export), Arc::clone(&pending), Arc::clone(&next));
                Box::new(move |handle: &Handle, tx: &PageSink, stop: &AtomicBool| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&(file, skip)) = pending.get(i) else {
                            return Ok(());
                        };
                        if stop.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                        export.read_file(file, skip, handle, tx, stop)?;
                    }
                }) as Reader
            })
            .collect())
    };
    let origin = Origin {
        mode: RunMode::Export,
        source: Some(source),
        filter: None,
    };
    let files = Files::new(
        origin,
        (files, Some(items)),
        first_columns,
        Box::new(readers),
    );
    let mut summary = drive(files, publish, target, run).await?;
    summary.window_note = window_note;
    Ok(summary)
}

/// Admit the export's change set into the Delta table `target` is a run of (see
/// [`crate::window`]). A full export, or any export into a snapshot folder, goes on.
async fn admit_export(
    export: &Export,
    target: &Target,
    config: &SnapshotConfig,
) -> Result<Admitted> {
    let window = export
        .summary
        .change_window()
        .map_err(|message| Error::CorruptExport {
            url: export.target.url.clone(),
            message,
        })?;
    match (window, target.split_parent()) {
        (Some(window), Some((root, _))) if config.output.format == TableFormat::Delta => {
            admit::into_delta(&root, &window, config).await
        }
        _ => Ok(Admitted::Go(None)),
    }
}

/// Check the key attributes `keys` against the export's first item, before anything is
/// written: each must be there, and a string, number or binary. Gives the export back.
async fn check_keys(export: Export, keys: &[String]) -> Result<Export> {
    if keys.is_empty() {
        return Ok(export);
    }
    let handle = Handle::current();
    let (export, first) = tokio::task::spawn_blocking(move || {
        let first = export.first_item(&handle);
        (export, first)
    })
    .await
    .map_err(|e| Error::Internal(format!("the export reader failed: {e}")))?;
    if let Some(item) = first? {
        crate::convert::check_key_values(&item, keys, "the export's first item")?;
    }
    Ok(export)
}

/// Merge the change log at `changes` (a converted incremental export) into the snapshot at
/// `base`, and commit the result as a new full snapshot at `config.output.destination`: per key, the
/// change with the latest `_write_time` wins; deletes remove the item, inserts and updates
/// replace it with the new image. Memory holds the change log's latest row per key; the base
/// snapshot is streamed. `keys` default to the base snapshot's key schema.
pub async fn apply(
    changes: &crate::sink::Destination,
    base: &crate::sink::Destination,
    keys: &[String],
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let run = RunContext::new(config, progress, cancel);
    let aws = aws_for(config, &[changes, base, &config.output.destination]).await?;
    let sdk = aws.as_ref().map(|a| &a.s3);
    let changes = Target::open_source(changes, sdk, &config.output.s3).await?;
    let base = Target::open_source(base, sdk, &config.output.s3).await?;
    let change_manifest = read_manifest(&changes).await?;
    let base_manifest = read_manifest(&base).await?;
    let (keys, change) = check_apply(&changes, &change_manifest, &base_manifest, keys, config)?;
    let window_note = if config.run.resume {
        None
    } else {
        match admit::onto_snapshot(&base, &base_manifest, &change, config.run.on_gap)? {
            Admitted::Go(note) => note,
            Admitted::Done(note) => {
                let out = config.output.destination.display();
                return Ok(Summary::already_applied(&out, &base_manifest.table, note));
            }
            Admitted::Refresh(gap) => {
                return Err(admit::cannot_refresh(&base.url, &gap, "a change log"));
            }
        }
    };
    // Opened (a local folder created) only once the change set is admitted.
    let target = Target::open(&config.output.destination, sdk, &config.output.s3).await?;
    crate::format::check_kind(&target, TableFormat::Snapshot, false).await?;
    let mut table = base_manifest.table.clone();
    if table.key_schema.is_empty() {
        table = declared_table(&table.name, table.arn.clone(), &keys, None);
    }
    table.item_count = Some(base_manifest.totals.items_written as i64);
    // The table's region, as the snapshot the changes apply to records it.
    let region = base_manifest.region.clone();
    let first = keys.clone();
    let source = format!("{} applied to {}", changes.url, base.url);
    let producer = move |positions: &[Position], _lanes: usize| -> Result<Vec<Reader>> {
        let Some(skip) = lines_done(&positions[0])? else {
            return Ok(Vec::new());
        };
        Ok(vec![
            Box::new(move |handle: &Handle, tx: &PageSink, stop: &AtomicBool| {
                let merging = Merge {
                    changes: (&changes, &change_manifest),
                    base: (&base, &base_manifest),
                    keys: &keys,
                };
                merging.run(handle, tx, stop, skip)
            }) as Reader,
        ])
    };
    let publish = CommitPlan {
        coverage: Some(crate::window::Coverage::Changes { window: change }),
        ..CommitPlan::new(config, &region, table)
    };
    let origin = Origin {
        mode: RunMode::Apply,
        source: Some(source),
        filter: None,
    };
    let items = table_items(&publish.table);
    let merge = Files::new(origin, (1, items), first, Box::new(producer));
    let mut summary = drive(merge, publish, target, &run).await?;
    summary.window_note = window_note;
    Ok(summary)
}

/// The checks of `apply` that need no output: the change log is one, the key attributes
/// (`keys`, else the snapshot's, else the change log's) are columns of both, the output is a
/// snapshot folder. Returns the keys and the change log's window.
fn check_apply(
    changes: &Target,
    change_manifest: &Manifest,
    base_manifest: &Manifest,
    keys: &[String],
    config: &SnapshotConfig,
) -> Result<(Vec<String>, crate::window::ChangeWindow)> {
    if !change_manifest.schema.columns.contains_key("_op") {
        return Err(Error::invalid(format!(
            "{} is not a change log (no _op column); give a converted incremental export",
            changes.url
        )));
    }
    let keys: Vec<String> = if !keys.is_empty() {
        keys.to_vec()
    } else if !base_manifest.table.key_schema.is_empty() {
        base_manifest
            .table
            .key_schema
            .iter()
            .map(|k| k.name.clone())
            .collect()
    } else {
        change_manifest
            .table
            .key_schema
            .iter()
            .map(|k| k.name.clone())
            .collect()
    };
    if keys.is_empty() {
        return Err(Error::invalid(
            "neither snapshot records its key attributes; give them with --key PK[,SK]",
        ));
    }
    for (what, manifest) in [
        ("the change log", &change_manifest),
        ("the snapshot", &base_manifest),
    ] {
        if let Some(key) = keys
            .iter()
            .find(|k| !manifest.schema.columns.contains_key(k.as_str()))
        {
            return Err(Error::invalid(format!(
                "--key {key}: {what} has no column '{key}'; give the table's key attributes, \
                 partition key first (or leave --key out to use the snapshot's)"
            )));
        }
    }
    if config.output.format == TableFormat::Delta {
        return Err(Error::invalid(
            "apply writes a snapshot folder; to merge an incremental export into a Delta \
             table, convert it into the table: convert-export EXPORT --to TABLE --format delta",
        ));
    }
    match change_manifest.coverage() {
        Some(crate::window::Coverage::Changes { window }) => Ok((keys, window)),
        _ => Err(Error::invalid(format!(
            "{} records no change window (its export summary has none); convert the \
             incremental export again with this ddbsnap",
            changes.url
        ))),
    }
}

/// The producer of `apply`: latest change per key into memory, then the base snapshot streamed
/// without the changed keys, then the new images in key order.
struct Merge<'a> {
    changes: (&'a Target, &'a Manifest),
    base: (&'a Target, &'a Manifest),
    keys: &'a [String],
}

impl Merge<'_> {
    /// Send the merged items, numbering them by the rows read (base rows, kept or not, then new
    /// images), which is the same order every run; the first `skip` are left out (a resume).
    fn run(self, handle: &Handle, tx: &PageSink, stop: &AtomicBool, skip: u64) -> Result<()> {
        let (changes, change_manifest) = self.changes;
        let latest = ChangeSet::read(changes, &change_manifest.files, self.keys, handle)?;
        // Rows numbered up to `read`; those up to `skip` were converted by an earlier run.
        let mut read = 0u64;
        let mut send = |rows: Vec<Item>, keep: &dyn Fn(&Item) -> Result<bool>| -> Result<()> {
            let first = read;
            read += rows.len() as u64;
            if read <= skip {
                return Ok(());
            }
            let mut kept = Vec::with_capacity(rows.len());
            for (i, row) in rows.into_iter().enumerate() {
                if first + i as u64 >= skip && keep(&row)? {
                    kept.push(row);
                }
            }
            let kept = Rows::from_items(&kept)?;
            let after = Position::Lines { lines: read };
            Ok(tx.blocking_send(Page::from_rows(0, kept, after))?)
        };
        let (base, base_manifest) = self.base;
        let unchanged = |item: &Item| Ok(!latest.contains(&key_text(item, self.keys)?));
        for file in &base_manifest.files {
            let mut items = handle.block_on(FileItems::open(base, &file.path))?;
            while let Some(batch) = handle.block_on(items.next_batch())? {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                send(batch, &unchanged)?;
            }
        }
        let mut images = latest.into_images().into_iter().map(|(_, item)| item);
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let batch: Vec<Item> = images.by_ref().take(BATCH_ROWS).collect();
            if batch.is_empty() {
                break;
            }
            send(batch, &|_| Ok(true))?;
        }
        Ok(tx.blocking_send(Page::from_rows(0, Rows::new(), Position::Done))?)
    }
}

/// A table described by what the user declares (an export or a change log carries no key
/// schema): key attributes in order, partition key first; their types come from the data.
fn declared_table(
    name: &str,
    arn: Option<String>,
    keys: &[String],
    items: Option<u64>,
) -> TableInfo {
    TableInfo {
        name: name.to_owned(),
        arn,
        key_schema: keys
            .iter()
            .enumerate()
            .map(|(i, name)| KeyAttribute {
                name: name.clone(),
                key_type: if i == 0 { "HASH" } else { "RANGE" }.to_owned(),
                attribute_type: crate::convert::KeyKind::S,
            })
            .collect(),
        item_count: items.map(|n| n as i64),
        size_bytes: None,
        billing_mode: "UNKNOWN".to_owned(),
        capacity: Default::default(),
        indexes: Vec::new(),
    }
}

/// The items DynamoDB (or the snapshot applied to) counts in `table`, when known.
fn table_items(table: &TableInfo) -> Option<u64> {
    table.item_count.map(|n| n.max(0) as u64)
}
