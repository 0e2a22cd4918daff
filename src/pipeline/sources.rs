//! Runs whose items do not come from a table scan: converting an export (`convert-export`,
//! `snapshot --mode export`) and merging a change log into a snapshot (`apply`). They share the
//! conversion thread, the rolling files and the commit with a scan; what they add is a set of
//! producers that read files on blocking threads and send batches of items.
//!
//! Resuming: each producer numbers its batches by the items of its source read so far (an
//! export's data file, or the rows of `apply` in a fixed order), which the checkpoint keeps as
//! the position; `--resume` makes producers for what is left and skips that many items.

use super::admit::{self, Admitted};
use super::*;
use crate::changes::{ChangeSet, key_text};
use crate::source::export::{LINE_KEY, line_key};
use crate::source::scan::PageSink;

/// Data files of an export read at once, at least (one per conversion lane when there are
/// more lanes).
const EXPORT_READERS: usize = 2;

/// The size of an item, as far as the number of lanes goes, when only the count is known.
const ITEM_BYTES_GUESS: u64 = 1024;

/// Convert the DynamoDB export at `source` (its `.../AWSDynamoDB/<export-id>` directory) into a
/// snapshot at `config.destination`, through the same conversion, files and commit as a scan.
/// Reads nothing from the table. `keys` are the table's key attributes, in order (an export
/// does not record them): they become the first columns and the manifest's key schema.
pub async fn convert_export(
    source: &crate::sink::Destination,
    keys: &[String],
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Summary> {
    let started = (Instant::now(), Utc::now());
    let aws = aws_for(config, &[source, &config.destination]).await?;
    let sdk = aws.as_ref().map(|a| &a.s3);
    // The export and the keys first: a wrong location or key must not leave an empty
    // destination behind.
    let export = Export::open(Target::open_source(source, sdk, &config.s3).await?).await?;
    let export = check_keys(export, keys).await?;
    leaving_no_trace(&config.destination, async {
        let target = Target::open(&config.destination, sdk, &config.s3).await?;
        let table_keys = delta_keys(&target, keys, config).await?;
        // Keys taken from the Delta table are checked against the export too.
        let export = if keys.is_empty() {
            check_keys(export, &table_keys).await?
        } else {
            export
        };
        let target = crate::plan::run_target(target, config, started.1).await?;
        convert_export_to(
            aws.as_ref().map(|a| a.region.as_str()),
            export,
            target,
            &table_keys,
            None,
            config,
            progress,
            cancel,
            started,
        )
        .await
    })
    .await
}

/// The key attributes of a conversion into `root`: for a Delta table that records its keys,
/// those keys (`--key` may be left out; a different `--key` is refused, as a MERGE by other
/// keys would corrupt the table); otherwise `keys` as given.
async fn delta_keys(
    root: &Target,
    keys: &[String],
    config: &SnapshotConfig,
) -> Result<Vec<String>> {
    if config.format != TableFormat::Delta {
        return Ok(keys.to_vec());
    }
    match crate::format::delta::key_names(root).await? {
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
#[allow(clippy::too_many_arguments)]
pub(super) async fn convert_export_to(
    region: Option<&str>,
    export: Export,
    target: Target,
    keys: &[String],
    described: Option<TableInfo>,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started: (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
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
    let first_columns: Vec<&str> = keys
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
        .collect();
    // Readers take the next unfinished file until none is left or one fails; a resumed file
    // is read again from its start (for its MD5) but its lines already converted are skipped.
    let files = export.files.len();
    let publish = CommitPlan {
        export: Some(export.summary.clone()),
        ..CommitPlan::new(config, &region, table)
    };
    let readers = move |positions: &[Position], lanes: usize| -> Result<Vec<Producer>> {
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
                }) as Producer
            })
            .collect())
    };
    let mut summary = run_producers(
        ("export", publish),
        target,
        config,
        progress,
        cancel,
        started,
        (files as u32, &first_columns, &source),
        readers,
    )
    .await?;
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
        (Some(window), Some((root, _))) if config.format == TableFormat::Delta => {
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

/// How many items of a source (an export data file, the input of `apply`) are already in
/// closed files: `None` when all of them are. Producers number their pages by this count (the
/// page's key `ddbsnap_line`), so the checkpoint's position is the count to skip.
fn lines_done(position: &Position) -> Result<Option<u64>> {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    match position {
        Position::Start => Ok(Some(0)),
        Position::Done => Ok(None),
        Position::After { key } => match key.0.get(LINE_KEY) {
            Some(AV::N(n)) => n.parse().map(Some).map_err(|_| bad_position()),
            _ => Err(bad_position()),
        },
    }
}

fn bad_position() -> Error {
    Error::invalid(format!(
        "{CHECKPOINT_FILE} holds a position that is not a line count; it was not written by \
         this conversion: start over with --overwrite"
    ))
}

/// Merge the change log at `changes` (a converted incremental export) into the snapshot at
/// `base`, and commit the result as a new full snapshot at `config.destination`: per key, the
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
    let started = (Instant::now(), Utc::now());
    let aws = aws_for(config, &[changes, base, &config.destination]).await?;
    let sdk = aws.as_ref().map(|a| &a.s3);
    let changes = Target::open_source(changes, sdk, &config.s3).await?;
    let base = Target::open_source(base, sdk, &config.s3).await?;
    let change_manifest = read_manifest(&changes).await?;
    let base_manifest = read_manifest(&base).await?;
    let (keys, change) = check_apply(&changes, &change_manifest, &base_manifest, keys, config)?;
    let window_note = if config.resume {
        None
    } else {
        match admit::onto_snapshot(&base, &base_manifest, &change, config.on_gap)? {
            Admitted::Go(note) => note,
            Admitted::Done(note) => {
                let out = config.destination.display();
                return Ok(Summary::already_applied(&out, &base_manifest.table, note));
            }
            Admitted::Refresh(gap) => {
                return Err(admit::cannot_refresh(&base.url, &gap, "a change log"));
            }
        }
    };
    // Opened (a local folder created) only once the change set is admitted.
    let target = Target::open(&config.destination, sdk, &config.s3).await?;
    crate::format::check_kind(&target, TableFormat::Snapshot, false).await?;
    let mut table = base_manifest.table.clone();
    if table.key_schema.is_empty() {
        table = declared_table(&table.name, table.arn.clone(), &keys, None);
    }
    table.item_count = Some(base_manifest.items_written as i64);
    // The table's region, as the snapshot the changes apply to records it.
    let region = base_manifest.region.clone();
    let key_names = keys.clone();
    let first: Vec<&str> = key_names.iter().map(String::as_str).collect();
    let source = format!("{} applied to {}", changes.url, base.url);
    let producer = move |positions: &[Position], _lanes: usize| -> Result<Vec<Producer>> {
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
            }) as Producer,
        ])
    };
    let publish = CommitPlan {
        coverage: Some(crate::window::Coverage::Changes { window: change }),
        ..CommitPlan::new(config, &region, table)
    };
    let mut summary = run_producers(
        ("apply", publish),
        target,
        config,
        progress,
        cancel,
        started,
        (1, &first, &source),
        producer,
    )
    .await?;
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
    if config.format == TableFormat::Delta {
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
            Ok(tx.blocking_send(Page::from_rows(0, kept, Some(line_key(read))))?)
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
        Ok(tx.blocking_send(Page::from_rows(0, Rows::new(), None))?)
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

/// Sends batches of items to the conversion thread, on a blocking thread; stops early when
/// the flag is set (another producer failed, or Ctrl-C).
type Producer = Box<dyn FnOnce(&Handle, &PageSink, &AtomicBool) -> Result<()> + Send + 'static>;

/// Run producers into the conversion lanes and commit: the path shared by everything that is
/// not a table scan (exports, `apply`). `segments` is how many item sources the producers
/// number their batches by, `source` names them (a resume must read the same), and
/// `first_columns` come first in the schema. `producers` makes the producers for what the
/// checkpoint's positions leave to do (everything on a first run, the rest on `--resume`),
/// given the number of lanes.
#[allow(clippy::too_many_arguments)]
async fn run_producers(
    (mode, mut publish): (&str, CommitPlan),
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    (started, started_at): (Instant, chrono::DateTime<Utc>),
    (segments, first_columns, source): (u32, &[&str], &str),
    producers: impl FnOnce(&[Position], usize) -> Result<Vec<Producer>>,
) -> Result<Summary> {
    let table = &publish.table;
    let fresh = || {
        new_checkpoint(
            &table.name,
            (mode, Some(source)),
            None,
            segments,
            config,
            started_at,
            TableShape::with_key_names(first_columns.iter().copied()),
        )
    };
    let from = (mode, Some(source));
    let checkpoint =
        match start_or_resume(&target, &table.name, from, config, None, &*progress, fresh).await? {
            Started::Committed(manifest) => {
                return Ok(Summary::of_manifest(&target, &manifest, true));
            }
            Started::Running(checkpoint) if checkpoint.segments != segments => {
                return Err(Error::Destination {
                    url: target.url.clone(),
                    message: format!(
                        "{CHECKPOINT_FILE} has positions for {} sources but {source} has {}; \
                         start over with --overwrite",
                        checkpoint.segments, segments
                    ),
                    source: None,
                });
            }
            Started::Running(checkpoint) => *checkpoint,
        };
    // From here on a failure leaves a conversion `--resume` can continue.
    let left = checkpoint
        .positions
        .iter()
        .filter(|p| !matches!(p, Position::Done))
        .count();
    let input_bytes = table
        .item_count
        .map(|n| (n.max(0) as u64).saturating_mul(ITEM_BYTES_GUESS));
    let lanes = lanes::lane_count(config.threads, input_bytes, left);
    let producers = producers(&checkpoint.positions, lanes)?;
    let concurrency = producers.len().max(1);
    progress.event(&ProgressEvent::Started {
        mode: mode.into(),
        table: table.name.clone(),
        segments,
        estimated_items: table.item_count.map(|n| n as u64),
        budget: ReadBudget::none(),
        concurrency: concurrency as u32,
        shard: target.shard(),
    });
    publish.concurrency = concurrency as u32;
    let writer_opts = publish.writer_options(&checkpoint.options)?;
    let setup = LaneSetup {
        target: &target,
        writer: &writer_opts,
        progress: &progress,
        config,
        time: None,
        expiry: None,
        throttle: None,
        report_pages: true,
    };
    let (tx, conversion) = Conversion::start(setup, checkpoint, lanes);

    let stop = Arc::new(AtomicBool::new(false));
    let mut running = JoinSet::new();
    for producer in producers {
        let (tx, stop) = (tx.clone(), Arc::clone(&stop));
        let handle = Handle::current();
        running.spawn_blocking(move || {
            let result = producer(&handle, &tx, &stop);
            if result.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            result
        });
    }
    let mut error = None;
    loop {
        let joined = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                stop.store(true, Ordering::SeqCst);
                error = Some(Error::Interrupted { url: target.url.clone() });
                break;
            }
            joined = running.join_next() => match joined {
                Some(joined) => joined,
                None => break,
            },
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                error.get_or_insert(Error::Internal(format!("a reader failed: {e}")));
            }
        }
    }
    // Producers still running (after a Ctrl-C) stop at their next check; then the channel
    // closes and the converter finishes.
    let checkpoint = conversion.finish(tx, error, &target).await?;
    finish(publish, &target, &progress, &cancel, checkpoint, started).await
}
