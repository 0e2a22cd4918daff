//! Delta Lake tables: a run's data files published as one commit to the table's log.
//!
//! A run writes its files into a folder of its own under the table root (`run=<utc-id>/`,
//! checkpointed like a snapshot, invisible to Delta readers until the commit), then one commit
//! removes every file of the current version and adds the run's files: readers see the old
//! version or the new one, never a mix, and earlier versions stay readable (time travel) until
//! `VACUUM` removes their files.
//!
//! Log replay and commits go through `delta_kernel`, the Delta project's own kernel, so tables
//! that other engines also write (checkpoints, OPTIMIZE, VACUUM) keep working, with two
//! exceptions the kernel (0.30) cannot do, written here as one JSON commit each, put only if no
//! other writer has taken that version:
//! - creating a table at the lowest protocol that holds the data (reader 1, writer 2; the kernel
//!   creates reader 3 / writer 7 tables, which older readers refuse);
//! - a full refresh that changes a column's type (a number that now needs a decimal, a type
//!   conflict now stored as JSON text): the commit replaces the schema (`metaData`, same table
//!   id) as it removes every file, as Spark's `overwriteSchema` does. Only on tables at
//!   protocol 1/2 (the ones ddbsnap creates), whose metadata holds nothing a feature adds.
//!
//! Otherwise columns a run has and the table lacks are added through the kernel (nullable, at
//! any struct level), and columns the run lacks stay (null in its files).
//!
//! Every commit carries a `txn` action whose application id names the run (`ddbsnap-<run>`):
//! a run resumed after a crash between its commit and its cleanup finds its own commit in the
//! log and does not commit twice. A concurrent writer that takes the version first makes the
//! run fail with a clear error; its files stay in its run folder for `--resume`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use delta_kernel::Snapshot;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel_default_engine::DefaultEngineBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use url::Url;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::sink::Target;

/// The folder of the Delta log under the table root.
pub const DELTA_LOG: &str = "_delta_log";

/// What publishing a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// The table version that holds the run.
    pub version: u64,
    /// Files the commit removed from the table (the previous version's).
    pub removed_files: usize,
    /// The run was already in the log (a resume after its commit): nothing was written.
    pub already: bool,
}

/// The table as the kernel addresses it: a store whose paths are the URL's paths, and the URL.
fn location(table: &Target) -> Result<(Arc<dyn ObjectStore>, Url)> {
    let url = table.url();
    if url.starts_with("s3://") {
        let parsed = Url::parse(&format!("{}/", url.trim_end_matches('/')))
            .map_err(|e| Error::Internal(format!("table URL {url}: {e}")))?;
        return Ok((Arc::clone(table.store()), parsed));
    }
    let parsed = Url::from_directory_path(url)
        .map_err(|_| Error::Internal(format!("table path {url} is not absolute")))?;
    Ok((
        Arc::new(object_store::local::LocalFileSystem::new()),
        parsed,
    ))
}

fn table_error(table: &Target, doing: &str, e: impl std::fmt::Display) -> Error {
    Error::Destination {
        url: table.url().to_owned(),
        message: format!("{doing}: {e}"),
        source: None,
    }
}

/// Publish the run in folder `run` (a name under the table root) described by `manifest` as
/// the table's next version: every current file removed, the run's files added. Creates the
/// table when there is none.
pub(crate) async fn publish_full_refresh(
    table: &Target,
    run: &str,
    manifest: &Manifest,
) -> Result<Published> {
    let (store, url) = location(table)?;
    let log = Path::from_url_path(url.path())
        .map_err(|e| Error::Internal(format!("table URL {url}: {e}")))?
        .join(DELTA_LOG);
    let has_log = store
        .list_with_delimiter(Some(&log))
        .await
        .map_err(|e| table.error("listing the Delta log", e))?
        .objects
        .iter()
        .any(|o| {
            o.location
                .filename()
                .is_some_and(|n| n.ends_with(".json") || n.ends_with(".parquet"))
        });
    let commit = Commit::new(run, manifest)?;
    if !has_log {
        return create(table, &store, &log, &commit).await;
    }
    // The kernel is synchronous and runs its own I/O executor: keep it off the async workers.
    let kernel_table = table.clone();
    let kernel_store = Arc::clone(&store);
    let (done, commit) = tokio::task::spawn_blocking(move || {
        let engine = DefaultEngineBuilder::new(kernel_store).build();
        let done = refresh(&kernel_table, &engine, &url, &commit);
        (done, commit)
    })
    .await
    .map_err(|e| Error::Internal(format!("the Delta commit thread failed: {e}")))?;
    match done? {
        Refresh::Done(published) => Ok(published),
        Refresh::ReplaceSchema {
            version,
            mut metadata,
            removes,
        } => {
            metadata["schemaString"] = commit.schema_string()?.into();
            let now = chrono::Utc::now().timestamp_millis();
            let mut actions = vec![serde_json::json!({ "metaData": metadata })];
            let removed_files = removes.len();
            actions.extend(removes.into_iter().map(|(path, size)| {
                serde_json::json!({"remove": {
                    "path": path,
                    "deletionTimestamp": now,
                    "dataChange": true,
                    "extendedFileMetadata": true,
                    "partitionValues": {},
                    "size": size,
                }})
            }));
            let text = commit.json_lines("WRITE", actions);
            put_version(table, &store, &log, version, text).await?;
            Ok(Published {
                version,
                removed_files,
                already: false,
            })
        }
    }
}

/// What one commit adds, and what it records about the run.
struct Commit {
    /// The run's application id in `txn` actions.
    app_id: String,
    /// The table schema of the run's files.
    schema: StructType,
    /// Add actions' paths (relative to the table root), sizes and row counts.
    files: Vec<(String, u64, u64)>,
    /// The run's record for `commitInfo.ddbsnap` (the manifest without its file list).
    info: String,
    /// Operation metrics, as Delta's own writers name them.
    metrics: Vec<(&'static str, String)>,
}

impl Commit {
    fn new(run: &str, manifest: &Manifest) -> Result<Self> {
        let schema = StructType::try_from_arrow(&manifest.schema.arrow).map_err(|e| {
            Error::Internal(format!("the run's schema has no Delta equivalent: {e}"))
        })?;
        let files: Vec<(String, u64, u64)> = manifest
            .files
            .iter()
            .map(|f| (format!("{run}/{}", f.path), f.bytes, f.rows))
            .collect();
        let mut record = serde_json::to_value(manifest)
            .map_err(|e| Error::Internal(format!("serializing the run: {e}")))?;
        if let Some(o) = record.as_object_mut() {
            o.remove("files");
            o.remove("schema");
            o.insert("run".into(), run.into());
        }
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        Ok(Commit {
            app_id: format!("ddbsnap-{run}"),
            schema,
            metrics: vec![
                ("numFiles", files.len().to_string()),
                ("numOutputRows", manifest.items_written.to_string()),
                ("numOutputBytes", bytes.to_string()),
            ],
            files,
            info: record.to_string(),
        })
    }

    /// The schema as a `metaData.schemaString`.
    fn schema_string(&self) -> Result<String> {
        serde_json::to_string(&self.schema)
            .map_err(|e| Error::Internal(format!("serializing the schema: {e}")))
    }

    /// The add-file metadata the kernel takes: path, no partition values, size, modification
    /// time (now) and `stats.numRecords`.
    fn adds(&self) -> Result<RecordBatch> {
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let mut partitions =
            MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
        for _ in &self.files {
            partitions
                .append(true)
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let stats = StructArray::from(vec![(
            Arc::new(Field::new("numRecords", ArrowType::Int64, true)),
            Arc::new(Int64Array::from_iter_values(
                self.files.iter().map(|f| f.2 as i64),
            )) as ArrayRef,
        )]);
        let partitions = partitions.finish();
        let schema = Schema::new(vec![
            Field::new("path", ArrowType::Utf8, false),
            Field::new(
                "partitionValues",
                arrow_array::Array::data_type(&partitions).clone(),
                false,
            ),
            Field::new("size", ArrowType::Int64, false),
            Field::new("modificationTime", ArrowType::Int64, false),
            Field::new("stats", arrow_array::Array::data_type(&stats).clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    self.files.iter().map(|f| f.0.as_str()),
                )),
                Arc::new(partitions),
                Arc::new(Int64Array::from_iter_values(
                    self.files.iter().map(|f| f.1 as i64),
                )),
                Arc::new(Int64Array::from_iter_values(self.files.iter().map(|_| now))),
                Arc::new(stats),
            ],
        )
        .map_err(|e| Error::Internal(format!("building add actions: {e}")))
    }

    /// `commitInfo.ddbsnap` as the kernel takes engine commit info: one row, one string.
    fn engine_info(&self) -> Result<(ArrowEngineData, Arc<StructType>)> {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "ddbsnap",
                ArrowType::Utf8,
                true,
            )])),
            vec![Arc::new(StringArray::from(vec![self.info.as_str()]))],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let schema = StructType::try_new([StructField::nullable("ddbsnap", DataType::STRING)])
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((ArrowEngineData::new(batch), Arc::new(schema)))
    }

    /// The JSON lines of a commit ddbsnap writes itself: commitInfo, the given actions, the
    /// run's `txn` and its adds.
    fn json_lines(&self, operation: &str, actions: Vec<serde_json::Value>) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        let mut lines = vec![serde_json::json!({"commitInfo": {
            "timestamp": now,
            "operation": operation,
            "operationParameters": {"mode": "Overwrite"},
            "operationMetrics": self.metrics.iter().cloned().collect::<HashMap<_, _>>(),
            "engineInfo": format!("ddbsnap/{}", env!("CARGO_PKG_VERSION")),
            "isBlindAppend": false,
            "ddbsnap": self.info,
        }})];
        lines.extend(actions);
        lines.push(serde_json::json!({"txn": {
            "appId": self.app_id, "version": 1, "lastUpdated": now,
        }}));
        for (path, size, rows) in &self.files {
            lines.push(serde_json::json!({"add": {
                "path": encode_path(path),
                "partitionValues": {},
                "size": size,
                "modificationTime": now,
                "dataChange": true,
                "stats": serde_json::json!({"numRecords": rows}).to_string(),
            }}));
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        text
    }
}

/// A relative path as a Delta log path: a URI path, percent-encoded where needed.
fn encode_path(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'=')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(path, KEEP).to_string()
}

/// Version 0 of a new table, at protocol reader 1 / writer 2.
async fn create(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    commit: &Commit,
) -> Result<Published> {
    let schema = commit.schema_string()?;
    let now = chrono::Utc::now().timestamp_millis();
    let actions = vec![
        serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        serde_json::json!({"metaData": {
            "id": uuid_v4(),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema,
            "partitionColumns": [],
            "configuration": {},
            "createdTime": now,
        }}),
    ];
    let text = commit.json_lines("CREATE TABLE AS SELECT", actions);
    put_version(table, store, log, 0, text).await?;
    Ok(Published {
        version: 0,
        removed_files: 0,
        already: false,
    })
}

/// Write log version `version` only if no other writer has: a conditional put.
async fn put_version(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    version: u64,
    text: String,
) -> Result<()> {
    let path = log.clone().join(format!("{version:020}.json"));
    let options = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&path, text.into(), options).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(concurrent(table, version)),
        Err(e) => Err(table.error(&format!("writing Delta log version {version}"), e)),
    }
}

fn concurrent(table: &Target, version: u64) -> Error {
    Error::Destination {
        url: table.url().to_owned(),
        message: format!(
            "another writer committed version {version} of the Delta table first; this run's \
             files are kept: run the same command again with --resume to commit them as the \
             next version"
        ),
        source: None,
    }
}

/// A random (version 4) UUID for a new table's id.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What the kernel's side of a full refresh did, or left to do.
enum Refresh {
    /// Committed (or found committed) through the kernel.
    Done(Published),
    /// The schema changes a column's type: commit `version` with this `metadata` (the table's,
    /// to get the new schema) and these removes (path, size: every current file).
    ReplaceSchema {
        version: u64,
        metadata: serde_json::Value,
        removes: Vec<(String, i64)>,
    },
}

/// The kernel's side of a full refresh of an existing table (on a blocking thread).
fn refresh(
    table: &Target,
    engine: &dyn delta_kernel::Engine,
    url: &Url,
    commit: &Commit,
) -> Result<Refresh> {
    let kernel = |doing: &str| {
        let doing = doing.to_owned();
        move |e: delta_kernel::KernelError| table_error(table, &doing, e)
    };
    let snapshot = Snapshot::builder_for(url.as_str())
        .build(engine)
        .map_err(kernel("reading the Delta log"))?;
    if let Some(_v) = snapshot
        .get_app_id_version(&commit.app_id, engine)
        .map_err(kernel("reading the Delta log"))?
    {
        return Ok(Refresh::Done(Published {
            version: snapshot.version(),
            removed_files: 0,
            already: true,
        }));
    }
    let current = snapshot.schema();
    let additions = match additions(&current, &commit.schema, None) {
        Ok(additions) => additions,
        Err(change) => return replace_schema(table, engine, &snapshot, &change),
    };
    let (info, info_schema) = commit.engine_info()?;
    let mut builder = Arc::clone(&snapshot)
        .update_table(
            UpdateTableOperation::Write,
            format!("ddbsnap/{}", env!("CARGO_PKG_VERSION")),
            true,
        )
        .with_transaction_id(commit.app_id.clone(), 1)
        .with_operation_metrics(commit.metrics.iter().map(|(k, v)| (*k, Some(v.clone()))))
        .with_commit_info(Box::new(info), info_schema);
    for (parent, field) in additions {
        builder = match parent {
            None => builder.add_column(field),
            Some(parent) => builder.add_column_at(parent, field),
        };
    }
    let mut txn = builder
        .build(engine, Box::new(FileSystemCommitter::new()))
        .map_err(kernel("starting the Delta commit"))?;
    let mut removed_files = 0;
    let scan = Arc::clone(&snapshot)
        .scan_builder()
        .build()
        .map_err(kernel("listing the table's files"))?;
    for meta in scan
        .scan_metadata(engine)
        .map_err(kernel("listing the table's files"))?
    {
        let meta = meta.map_err(kernel("listing the table's files"))?;
        removed_files += meta
            .scan_files
            .selection_vector()
            .iter()
            .filter(|s| **s)
            .count();
        txn.remove_files(meta.scan_files);
    }
    txn.add_files(Box::new(ArrowEngineData::new(commit.adds()?)));
    match txn.commit(engine).map_err(kernel("committing"))? {
        CommitResult::Committed(done) => Ok(Refresh::Done(Published {
            version: done.commit_version(),
            removed_files,
            already: false,
        })),
        CommitResult::Conflicted(c) => Err(concurrent(table, c.conflict_version())),
        CommitResult::Retryable(_) => Err(table_error(
            table,
            "committing",
            "the Delta log could not be written (an I/O error); run the same command again \
             with --resume",
        )),
    }
}

/// What a schema-replacing full refresh of `snapshot` needs (see [`Refresh::ReplaceSchema`]);
/// refused on tables whose protocol is above 1/2, whose metadata may carry what a feature adds
/// (column mapping, for one).
fn replace_schema(
    table: &Target,
    engine: &dyn delta_kernel::Engine,
    snapshot: &Arc<Snapshot>,
    change: &str,
) -> Result<Refresh> {
    let kernel =
        |doing: &'static str| move |e: delta_kernel::KernelError| table_error(table, doing, e);
    let config = snapshot.table_configuration();
    let protocol = serde_json::to_value(config.protocol())
        .map_err(|e| Error::Internal(format!("reading the table's protocol: {e}")))?;
    let (reader, writer) = (
        protocol["minReaderVersion"].as_i64().unwrap_or(0),
        protocol["minWriterVersion"].as_i64().unwrap_or(0),
    );
    if reader != 1 || writer > 2 {
        return Err(table_error(
            table,
            "the run's schema cannot replace the table's",
            format!(
                "{change}, and the table's protocol ({reader}/{writer}) is not one ddbsnap \
                 rewrites schemas of; write this run to a new table location"
            ),
        ));
    }
    let metadata = serde_json::to_value(config.metadata())
        .map_err(|e| Error::Internal(format!("reading the table's metadata: {e}")))?;
    let scan = Arc::clone(snapshot)
        .scan_builder()
        .build()
        .map_err(kernel("listing the table's files"))?;
    let mut removes = Vec::new();
    for meta in scan
        .scan_metadata(engine)
        .map_err(kernel("listing the table's files"))?
    {
        let (data, selected) = meta
            .map_err(kernel("listing the table's files"))?
            .scan_files
            .into_parts();
        let data = ArrowEngineData::try_from_engine_data(data)
            .map_err(kernel("listing the table's files"))?;
        let batch = data.record_batch();
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::Internal(format!("scan files have no {name}")))
        };
        let paths = column("path")?;
        let sizes = column("size")?;
        let paths = arrow_array::cast::AsArray::as_string::<i32>(paths.as_ref());
        let sizes = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
            sizes.as_ref(),
        );
        for row in 0..batch.num_rows() {
            if selected.get(row).copied().unwrap_or(true) {
                removes.push((paths.value(row).to_owned(), sizes.value(row)));
            }
        }
    }
    Ok(Refresh::ReplaceSchema {
        version: snapshot.version() + 1,
        metadata,
        removes,
    })
}

/// The columns `new` has that `current` lacks, as (parent, field) for the kernel's
/// `add_column_at` (`None`: top level), made nullable; `Err` names a change that is not an
/// addition (a column whose type changed). Columns `new` lacks stay in the table (null in the
/// new files), and column order does not matter (Delta reads Parquet columns by name).
fn additions(
    current: &StructType,
    new: &StructType,
    parent: Option<delta_kernel::expressions::ColumnName>,
) -> std::result::Result<Vec<(Option<delta_kernel::expressions::ColumnName>, StructField)>, String>
{
    let mut out = Vec::new();
    for field in new.fields() {
        match current.field(field.name()) {
            None => out.push((
                parent.clone(),
                StructField::nullable(field.name().clone(), field.data_type().clone())
                    .with_metadata(field.metadata().clone()),
            )),
            Some(existing) => match (existing.data_type(), field.data_type()) {
                (DataType::Struct(a), DataType::Struct(b)) => {
                    let path = match &parent {
                        None => delta_kernel::expressions::ColumnName::new([existing.name()]),
                        Some(p) => p.join(&delta_kernel::expressions::ColumnName::new([
                            existing.name()
                        ])),
                    };
                    out.extend(additions(a, b, Some(path))?);
                }
                (a, b) if a == b => {}
                (a, b) => {
                    return Err(format!(
                        "column '{}' changed type from {a} to {b}",
                        field.name()
                    ));
                }
            },
        }
    }
    Ok(out)
}
