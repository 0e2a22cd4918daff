//! Runs whose items do not come from a table scan: converting an export (`convert-export`,
//! `snapshot --mode export`) and merging a change log into a snapshot (`apply`). They share the
//! conversion thread, the rolling files and the commit with a scan; what they add is a set of
//! producers that read files on blocking threads and send batches of items.

use super::*;

/// Data files of an export read at once.
const EXPORT_READERS: usize = 2;

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
    let aws = AwsContext::load(&config.aws).await?;
    let export = Target::open(source, Some(&aws.sdk), &config.s3).await?;
    let target = Target::open(&config.destination, Some(&aws.sdk), &config.s3).await?;
    convert_export_to(
        &aws.region,
        export,
        target,
        keys,
        None,
        config,
        progress,
        cancel,
        started,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn convert_export_to(
    region: &str,
    export: Target,
    target: Target,
    keys: &[String],
    described: Option<TableInfo>,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    started: (Instant, chrono::DateTime<Utc>),
) -> Result<Summary> {
    if config.resume {
        return Err(Error::invalid(
            "--resume is not supported when converting an export yet; run again with \
             --overwrite (the export itself is unchanged)",
        ));
    }
    let export = Arc::new(Export::open(export).await?);
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
    // Readers take the next file until none is left or one fails.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<Producer> = (0..EXPORT_READERS.min(export.files.len()))
        .map(|_| {
            let (export, next) = (Arc::clone(&export), Arc::clone(&next));
            Box::new(
                move |handle: &Handle, tx: &mpsc::Sender<Msg>, stop: &AtomicBool| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= export.files.len() || stop.load(Ordering::SeqCst) {
                            return Ok(());
                        }
                        export.read_file(i, handle, tx)?;
                    }
                },
            ) as Producer
        })
        .collect();
    run_producers(
        region,
        table,
        Origin {
            mode: "export",
            time: None,
            export: Some(export.summary.clone()),
        },
        target,
        config,
        progress,
        cancel,
        started,
        (export.files.len() as u32, &first_columns),
        readers,
    )
    .await
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
    let aws = AwsContext::load(&config.aws).await?;
    let changes = Target::open(changes, Some(&aws.sdk), &config.s3).await?;
    let base = Target::open(base, Some(&aws.sdk), &config.s3).await?;
    let target = Target::open(&config.destination, Some(&aws.sdk), &config.s3).await?;
    let change_manifest = read_manifest(&changes).await?;
    let base_manifest = read_manifest(&base).await?;
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
    let mut table = base_manifest.table.clone();
    if table.key_schema.is_empty() {
        table = declared_table(&table.name, table.arn.clone(), &keys, None);
    }
    table.item_count = Some(base_manifest.items_written as i64);
    let key_names = keys.clone();
    let first: Vec<&str> = key_names.iter().map(String::as_str).collect();
    let producer: Producer = Box::new(move |handle, tx, stop| {
        merge(
            handle,
            tx,
            stop,
            &changes,
            &change_manifest,
            &base,
            &base_manifest,
            &keys,
        )
    });
    run_producers(
        &aws.region,
        table,
        Origin {
            mode: "apply",
            time: None,
            export: None,
        },
        target,
        config,
        progress,
        cancel,
        started,
        (1, &first),
        vec![producer],
    )
    .await
}

/// The key of an item as text, for matching rows of two snapshots.
fn key_text(item: &Item, keys: &[String]) -> Result<String> {
    let mut text = String::new();
    for k in keys {
        let value = item.get(k).ok_or_else(|| Error::Unrepresentable {
            path: k.clone(),
            message: "a row has no value for this key attribute; check --key".into(),
        })?;
        text.push_str(&crate::convert::json::value_to_json(value)?);
        text.push('\u{1f}');
    }
    Ok(text)
}

/// The producer of `apply`: latest change per key into memory, then the base snapshot streamed
/// without the changed keys, then the new images.
#[allow(clippy::too_many_arguments)]
fn merge(
    handle: &Handle,
    tx: &mpsc::Sender<Msg>,
    stop: &AtomicBool,
    changes: &Target,
    change_manifest: &Manifest,
    base: &Target,
    base_manifest: &Manifest,
    keys: &[String],
) -> Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let write_time = |row: &Item| match row.get("_write_time") {
        Some(AV::N(n)) => n.parse::<i128>().unwrap_or(i128::MIN),
        _ => i128::MIN,
    };
    let mut latest: HashMap<String, Item> = HashMap::new();
    for file in &change_manifest.files {
        let mut rows = handle.block_on(FileItems::open(changes, &file.path))?;
        while let Some(batch) = handle.block_on(rows.next_batch())? {
            for row in batch {
                let key = key_text(&row, keys)?;
                if latest
                    .get(&key)
                    .is_none_or(|seen| write_time(&row) >= write_time(seen))
                {
                    latest.insert(key, row);
                }
            }
        }
    }
    let send = |items: Vec<Item>, line: u64| -> Result<()> {
        let key = HashMap::from([("ddbsnap_line".to_owned(), AV::N(line.to_string()))]);
        tx.blocking_send(Msg::Page(Page::from_items(0, items, Some(key))))
            .map_err(|_| Error::Internal("the conversion thread stopped".into()))
    };
    let mut line = 0u64;
    for file in &base_manifest.files {
        let mut items = handle.block_on(FileItems::open(base, &file.path))?;
        while let Some(batch) = handle.block_on(items.next_batch())? {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            line += batch.len() as u64;
            let mut kept = Vec::with_capacity(batch.len());
            for item in batch {
                if !latest.contains_key(&key_text(&item, keys)?) {
                    kept.push(item);
                }
            }
            send(kept, line)?;
        }
    }
    let mut images = Vec::new();
    for (_, mut row) in latest {
        let deleted = matches!(row.get("_op"), Some(AV::S(op)) if op == "delete");
        if deleted {
            continue;
        }
        for column in crate::source::export::CHANGE_COLUMNS {
            row.remove(column);
        }
        images.push(row);
        if images.len() == BATCH_ROWS {
            line += images.len() as u64;
            send(std::mem::take(&mut images), line)?;
        }
    }
    tx.blocking_send(Msg::Page(Page::from_items(0, images, None)))
        .map_err(|_| Error::Internal("the conversion thread stopped".into()))
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
type Producer =
    Box<dyn FnOnce(&Handle, &mpsc::Sender<Msg>, &AtomicBool) -> Result<()> + Send + 'static>;

/// Run `producers` into one conversion thread and commit: the path shared by everything that
/// is not a table scan (exports, `apply`). `segments` is how many item sources the producers
/// number their batches by; `first_columns` come first in the schema.
#[allow(clippy::too_many_arguments)]
async fn run_producers(
    region: &str,
    table: TableInfo,
    origin: Origin<'_>,
    target: Target,
    config: &SnapshotConfig,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    (started, started_at): (Instant, chrono::DateTime<Utc>),
    (segments, first_columns): (u32, &[&str]),
    producers: Vec<Producer>,
) -> Result<Summary> {
    target.prepare(config.overwrite).await?;
    let checkpoint = new_checkpoint(
        &table.name,
        origin.mode,
        None,
        segments,
        config,
        started_at,
        TableShape::with_key_names(first_columns.iter().copied()),
    );
    write_checkpoint(&target, &checkpoint).await?;
    let concurrency = producers.len().max(1);
    progress.event(&ProgressEvent::Started {
        table: table.name.clone(),
        segments,
        estimated_items: table.item_count.map(|n| n as u64),
        budget: ReadBudget::none(),
        concurrency: concurrency as u32,
    });
    let writer_opts = writer_options(config, &table)?;
    let (tx, rx) = mpsc::channel::<Msg>(concurrency);
    let converter = Converter {
        writer: RollingWriter::new(
            target.clone(),
            Handle::current(),
            writer_opts.clone(),
            Arc::clone(&progress),
            0,
        ),
        numbers: config.numbers,
        time: None,
        state: checkpoint,
        throttle: Arc::new(Throttle::new(1.0, None, false)),
        prior_counts: (0, 0),
        progress: Arc::clone(&progress),
        held: Vec::new(),
        held_pages: Vec::new(),
        sampling: true,
        max_file_age: config.checkpoint_interval,
    };
    let converter = tokio::task::spawn_blocking(move || converter.run(rx));

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
    if error.is_none() {
        let _ = tx.send(Msg::End).await;
    }
    drop(tx);
    // Producers still running (after a Ctrl-C) stop at their next check; then the channel
    // closes and the converter finishes.
    let converted = converter
        .await
        .map_err(|e| Error::Internal(format!("conversion thread failed: {e}")));
    if let Some(e) = error {
        return Err(e);
    }
    let (mut checkpoint, complete) = converted??;
    if !complete {
        return Err(Error::Internal("the conversion stopped early".into()));
    }
    commit(
        region,
        table,
        origin,
        &target,
        config,
        &progress,
        &cancel,
        &mut checkpoint,
        writer_opts,
        (ReadBudget::none(), concurrency as u32),
        started,
    )
    .await
}
