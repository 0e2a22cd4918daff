//! The Delta table as a run commits to it: its location and log, the kernel's view of its
//! latest version ([`Delta`]), and the actions of one commit ([`Commit`]), put through the
//! kernel or, for what the kernel cannot do, as one JSON commit of our own.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use delta_kernel::Snapshot;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::{TryFromArrow, TryFromKernel};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel_default_engine::DefaultEngineBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use url::Url;

use crate::convert::TableShape;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::progress::{Progress, ProgressEvent};
use crate::sink::writer::WriterOptions;
use crate::sink::{DataFile, Target};

use super::mapping::Mapping;
use super::{DELTA_LOG, log};

/// The Delta commit of a run, as the run's summary reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeltaCommit {
    /// The table version that holds the run.
    pub version: u64,
    /// Files of the previous version the commit removed: all of them for a full refresh,
    /// those holding a changed or deleted key for a MERGE.
    pub files_removed: usize,
    /// Files the commit added.
    pub files_added: usize,
    /// For a MERGE: what it changed and rewrote.
    pub merge: Option<MergeStats>,
    /// A resumed run found its commit already in the log and wrote nothing.
    pub already_committed: bool,
    /// A log checkpoint of this version was written (every `delta.checkpointInterval`
    /// versions, 10 unless the table says otherwise), so readers replay at most that many
    /// JSON commits.
    #[serde(default)]
    pub log_checkpoint: bool,
    /// Log files removed after the checkpoint: commits and checkpoints older than
    /// `delta.logRetentionDuration` (30 days unless the table says otherwise) that a newer
    /// checkpoint covers.
    #[serde(default)]
    pub log_files_removed: usize,
    /// Commits tried: more than one when other writers committed first (see
    /// `delta::concurrency`).
    #[serde(default)]
    pub attempts: u32,
}

/// What a MERGE commit did, counted as Delta's own MERGE counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MergeStats {
    /// Keys the table did not have.
    pub rows_inserted: u64,
    /// Keys the table had, with a new image.
    pub rows_updated: u64,
    /// Keys the table had, deleted.
    pub rows_deleted: u64,
    /// Rows of the rewritten files that did not change, copied into new files.
    pub rows_copied: u64,
    /// Size of the files removed (rewritten without the changed rows).
    pub bytes_rewritten: u64,
    /// Size of the files added.
    pub bytes_added: u64,
    /// Small files that no changed key was in, folded into the rewrite (auto compaction:
    /// once the table has 16 or more files under three quarters of the target size); their
    /// rows are among `rows_copied`.
    #[serde(default)]
    pub files_compacted: u64,
}

impl DeltaCommit {
    pub(super) fn already(version: u64) -> Self {
        DeltaCommit {
            version,
            files_removed: 0,
            files_added: 0,
            merge: None,
            already_committed: true,
            log_checkpoint: false,
            log_files_removed: 0,
            attempts: 1,
        }
    }
}

/// The table as the kernel addresses it: a store whose paths are the URL's paths, and the URL.
pub(super) fn location(table: &Target) -> Result<(Arc<dyn ObjectStore>, Url)> {
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

pub(super) fn table_error(table: &Target, doing: &str, e: impl std::fmt::Display) -> Error {
    Error::Destination {
        url: table.url().to_owned(),
        message: format!("{doing}: {e}"),
        source: None,
    }
}

/// A finished run, as publishing needs it.
pub(crate) struct Run {
    /// The run's folder under the table root; its name is the run's id.
    pub folder: Target,
    /// The folder's name.
    pub name: String,
    /// Where the run's files are: `folder`, except for a table of changes, whose rows come
    /// from the run of the table they changed.
    pub source: Target,
    /// The run's record (its files are in `source`).
    pub manifest: Manifest,
    /// The run's inferred shape.
    pub shape: TableShape,
    /// How a MERGE writes the files it rewrites.
    pub writer: WriterOptions,
    /// Where a MERGE reports its progress.
    pub progress: Arc<dyn Progress>,
}

impl Run {
    /// The application id of the run's `txn` action.
    pub(super) fn app_id(&self) -> String {
        app_id(&self.name)
    }
}

/// The application id of the `txn` action of the run in the folder `name`.
pub(super) fn app_id(name: &str) -> String {
    format!("ddbsnap-{name}")
}

pub(super) fn log_path(url: &Url) -> Result<Path> {
    Ok(Path::from_url_path(url.path())
        .map_err(|e| Error::Internal(format!("table URL {url}: {e}")))?
        .join(DELTA_LOG))
}

/// True when the log at `log` has a commit or a checkpoint: a table exists.
pub(super) async fn has_log(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
) -> Result<bool> {
    Ok(store
        .list_with_delimiter(Some(log))
        .await
        .map_err(|e| table.error("listing the Delta log", e))?
        .objects
        .iter()
        .any(|o| {
            o.location
                .filename()
                .is_some_and(|n| n.ends_with(".json") || n.ends_with(".parquet"))
        }))
}

/// An existing table, on a blocking thread: its latest snapshot as the kernel read it.
pub(super) struct Delta<'a> {
    pub(super) table: &'a Target,
    pub(super) store: &'a Arc<dyn ObjectStore>,
    pub(super) url: &'a Url,
    pub(super) log: &'a Path,
    pub(super) engine: &'a dyn delta_kernel::Engine,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) handle: &'a Handle,
}

/// One batch of the table's current files: the kernel's scan rows (for remove actions) and,
/// per row, the file when the row is selected (a live file).
pub(super) struct FileBatch {
    data: delta_kernel::FilteredEngineData,
    pub(super) files: Vec<Option<TableFile>>,
}

/// A live file of the table.
#[derive(Debug, Clone)]
pub(super) struct TableFile {
    /// As in the log: relative to the table root, percent-encoded.
    pub path: String,
    pub size: i64,
}

impl<'a> Delta<'a> {
    pub(super) fn kernel(
        &self,
        doing: &str,
    ) -> impl Fn(delta_kernel::KernelError) -> Error + use<'a> {
        let (table, doing) = (self.table, doing.to_owned());
        move |e| table_error(table, &doing, e)
    }

    /// The table's current schema.
    pub(super) fn schema(&self) -> Arc<StructType> {
        self.snapshot.schema()
    }

    /// The DynamoDB table and its key attributes, partition key first, as the table's
    /// properties record them (`ddbsnap.table`, `ddbsnap.keySchema`, set when ddbsnap created
    /// it); `None` when they do not.
    pub(super) fn source(&self) -> Result<Option<(String, Vec<crate::table::KeyAttribute>)>> {
        let metadata = serde_json::to_value(self.snapshot.table_configuration().metadata())
            .map_err(|e| Error::Internal(format!("reading the table's metadata: {e}")))?;
        let config = &metadata["configuration"];
        let Some(text) = config["ddbsnap.keySchema"].as_str() else {
            return Ok(None);
        };
        let keys = serde_json::from_str(text).map_err(|e| {
            table_error(
                self.table,
                "reading the table property ddbsnap.keySchema",
                e,
            )
        })?;
        let name = config["ddbsnap.table"].as_str().unwrap_or_default();
        Ok(Some((name.to_owned(), keys)))
    }

    /// An error when ddbsnap cannot write files this table reads correctly: column mapping by
    /// id (another engine's choice; ddbsnap maps by name).
    pub(super) fn writable(&self) -> Result<()> {
        self.mapping().map(|_| ())
    }

    /// The table's column mapping (see [`super::mapping`]) when it maps columns by name; an
    /// error when it maps them by id.
    pub(super) fn mapping(&self) -> Result<Option<Mapping>> {
        use delta_kernel::table_features::ColumnMappingMode;
        let properties = self.snapshot.table_properties();
        match properties.column_mapping_mode {
            None | Some(ColumnMappingMode::None) => Ok(None),
            Some(ColumnMappingMode::Name) => {
                let protocol = self.snapshot.table_configuration().protocol();
                let (reader, writer) =
                    (protocol.min_reader_version(), protocol.min_writer_version());
                if (reader, writer) != (3, 7) {
                    return Err(table_error(
                        self.table,
                        "writing the table",
                        format!(
                            "it uses column mapping by name at protocol {reader}/{writer}, \
                             which ddbsnap does not write (it writes column mapping at 3/7, \
                             with table features); nothing was changed: write this run to a \
                             new table location"
                        ),
                    ));
                }
                Mapping::of(&self.schema(), properties.column_mapping_max_column_id).map(Some)
            }
            Some(ColumnMappingMode::Id) => Err(table_error(
                self.table,
                "writing the table",
                "it uses column mapping by id (delta.columnMapping.mode), which ddbsnap does \
                 not write (it maps by name); nothing was changed: write this run to a new \
                 table location",
            )),
        }
    }

    /// The latest ddbsnap record in the log, up to this snapshot.
    pub(super) fn record(&self) -> Result<Option<log::Record>> {
        let found = self.handle.block_on(log::latest_record(
            self.table,
            self.store,
            self.log,
            self.snapshot.version(),
        ))?;
        Ok(found.map(|(_, record)| record))
    }

    /// The table's live files, as the kernel's log replay gives them.
    pub(super) fn files(&self) -> Result<Vec<FileBatch>> {
        let listing = self.kernel("listing the table's files");
        let scan = Arc::clone(&self.snapshot)
            .scan_builder()
            .build()
            .map_err(&listing)?;
        let mut batches = Vec::new();
        for meta in scan.scan_metadata(self.engine).map_err(&listing)? {
            let (data, selected) = meta.map_err(&listing)?.scan_files.into_parts();
            let data = ArrowEngineData::try_from_engine_data(data).map_err(&listing)?;
            let batch = data.record_batch();
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::Internal(format!("scan files have no {name}")))
            };
            let paths = column("path")?;
            let paths = paths.as_string::<i32>();
            let sizes = column("size")?;
            let sizes = sizes.as_primitive::<arrow_array::types::Int64Type>();
            let vectors = column("deletionVector")?;
            let mut files = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                if !selected.get(row).copied().unwrap_or(true) {
                    files.push(None);
                    continue;
                }
                if vectors.is_valid(row) {
                    return Err(table_error(
                        self.table,
                        "reading the table's files",
                        format!(
                            "{} has a deletion vector, which ddbsnap does not apply; run a \
                             full refresh, or have the engine that wrote it purge deletion \
                             vectors (REORG TABLE ... APPLY (PURGE))",
                            paths.value(row)
                        ),
                    ));
                }
                files.push(Some(TableFile {
                    path: paths.value(row).to_owned(),
                    size: sizes.value(row),
                }));
            }
            let data =
                delta_kernel::FilteredEngineData::try_new(data, selected).map_err(&listing)?;
            batches.push(FileBatch { data, files });
        }
        Ok(batches)
    }

    /// This table at its newest version.
    pub(super) fn latest(&self) -> Result<Delta<'a>> {
        let snapshot = Snapshot::builder_for(self.url.as_str())
            .build(self.engine)
            .map_err(self.kernel("reading the Delta log"))?;
        Ok(Delta { snapshot, ..*self })
    }

    /// This table at the same version (another handle on it).
    pub(super) fn latest_as_is(&self) -> Delta<'a> {
        Delta {
            snapshot: Arc::clone(&self.snapshot),
            ..*self
        }
    }

    /// Commit `commit` as the next version: remove the live files `remove` selects (by their
    /// log path), add the commit's files, and add the columns its schema has that the table
    /// lacks. A schema that changes a column's type replaces the table's (see the module
    /// documentation), which needs every file removed. [`Attempt::Conflict`] when another
    /// writer took the version first.
    pub(super) fn try_commit(
        &self,
        commit: &Commit,
        remove: &dyn Fn(&str) -> bool,
    ) -> Result<Attempt> {
        let batches = self.files()?;
        let mut removed = 0;
        let mut kept = 0;
        for batch in &batches {
            for file in batch.files.iter().flatten() {
                if remove(&file.path) {
                    removed += 1;
                } else {
                    kept += 1;
                }
            }
        }
        let done = |version| DeltaCommit {
            version,
            files_removed: removed,
            files_added: commit.files.len(),
            merge: commit.merge,
            already_committed: false,
            log_checkpoint: false,
            log_files_removed: 0,
            attempts: 1,
        };
        let own = |change: &str| -> Result<Attempt> {
            Ok(
                match self.replace_schema(commit, &batches, remove, change)? {
                    Some(version) => Attempt::Done(done(version)),
                    None => Attempt::Conflict(self.snapshot.version() + 1),
                },
            )
        };
        let additions = match additions(&self.schema(), &commit.schema, None) {
            Ok(additions) if additions.is_empty() || commit.max_column_id.is_none() => additions,
            Ok(_) => return own("the run adds columns to a table with column mapping"),
            Err(change) if kept == 0 => return own(&change),
            Err(change) => {
                return Err(Error::Internal(format!(
                    "{change}, but the commit keeps {kept} files of the old schema"
                )));
            }
        };
        let kernel = self.kernel("committing");
        let (info, info_schema) = commit.engine_info()?;
        let operation = match commit.operation {
            "MERGE" => UpdateTableOperation::Merge,
            "OPTIMIZE" => UpdateTableOperation::Optimize,
            _ => UpdateTableOperation::Write,
        };
        let mut builder = Arc::clone(&self.snapshot).update_table(
            operation,
            format!("ddbsnap/{}", env!("CARGO_PKG_VERSION")),
            commit.data_change,
        );
        if let Some(app_id) = &commit.app_id {
            builder = builder.with_transaction_id(app_id.clone(), 1);
        }
        let mut builder = builder
            .with_operation_metrics(commit.metrics.iter().map(|(k, v)| (*k, Some(v.clone()))))
            .with_commit_info(Box::new(info), info_schema);
        for (parent, field) in additions {
            builder = match parent {
                None => builder.add_column(field),
                Some(parent) => builder.add_column_at(parent, field),
            };
        }
        let mut txn = builder
            .build(self.engine, Box::new(FileSystemCommitter::new()))
            .map_err(self.kernel("starting the Delta commit"))?;
        for batch in batches {
            let (data, _) = batch.data.into_parts();
            let selection = batch
                .files
                .iter()
                .map(|f| f.as_ref().is_some_and(|f| remove(&f.path)))
                .collect();
            txn.remove_files(
                delta_kernel::FilteredEngineData::try_new(data, selection).map_err(&kernel)?,
            );
        }
        if !commit.files.is_empty() {
            let stats_schema = txn.stats_schema().map_err(&kernel)?;
            txn.add_files(Box::new(ArrowEngineData::new(commit.adds(&stats_schema)?)));
        }
        match txn.commit(self.engine).map_err(&kernel)? {
            CommitResult::Committed(c) => Ok(Attempt::Done(done(c.commit_version()))),
            CommitResult::Conflicted(c) => Ok(Attempt::Conflict(c.conflict_version())),
            CommitResult::Retryable(_) => Err(table_error(
                self.table,
                "committing",
                "the Delta log could not be written (an I/O error); run the same command \
                 again with --resume",
            )),
        }
    }

    /// Commit `commit` with a new schema (`metaData` replaced, same table id) as it removes the
    /// live files in `batches` that `remove` selects: what the kernel (0.30) cannot do (a
    /// column whose type changed, with every file removed; columns new to a table with column
    /// mapping, with the ids and physical names its files were written with). Refused on
    /// tables whose protocol is above 1/2 unless it is the 3/7 of column mapping alone (as
    /// ddbsnap creates it), whose metadata may carry what other features add. Returns the version written; `None` when
    /// another writer took it.
    pub(super) fn replace_schema(
        &self,
        commit: &Commit,
        batches: &[FileBatch],
        remove: &dyn Fn(&str) -> bool,
        change: &str,
    ) -> Result<Option<u64>> {
        let config = self.snapshot.table_configuration();
        let protocol = serde_json::to_value(config.protocol())
            .map_err(|e| Error::Internal(format!("reading the table's protocol: {e}")))?;
        let (reader, writer) = (
            protocol["minReaderVersion"].as_i64().unwrap_or(0),
            protocol["minWriterVersion"].as_i64().unwrap_or(0),
        );
        let mapping_only = serde_json::json!(["columnMapping"]);
        let ours = (reader == 1 && writer <= 2)
            || (commit.max_column_id.is_some()
                && (reader, writer) == (3, 7)
                && protocol["readerFeatures"] == mapping_only
                && protocol["writerFeatures"] == mapping_only);
        if !ours {
            return Err(table_error(
                self.table,
                "the run's schema cannot replace the table's",
                format!(
                    "{change}, and the table's protocol ({reader}/{writer}) is not one ddbsnap \
                     rewrites schemas of; write this run to a new table location"
                ),
            ));
        }
        let mut metadata = serde_json::to_value(config.metadata())
            .map_err(|e| Error::Internal(format!("reading the table's metadata: {e}")))?;
        metadata["schemaString"] = commit.schema_string()?.into();
        if let Some(max) = commit.max_column_id {
            metadata["configuration"][super::mapping::MAX_COLUMN_ID] = max.to_string().into();
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = vec![serde_json::json!({ "metaData": metadata })];
        let removed = batches
            .iter()
            .flat_map(|b| b.files.iter().flatten())
            .filter(|f| remove(&f.path));
        for file in removed {
            actions.push(serde_json::json!({"remove": {
                "path": file.path,
                "deletionTimestamp": now,
                "dataChange": true,
                "extendedFileMetadata": true,
                "partitionValues": {},
                "size": file.size,
            }}));
        }
        let version = self.snapshot.version() + 1;
        let text = commit.json_lines(commit.operation, actions);
        let put = put_version(self.table, self.store, self.log, version, text);
        Ok(self.handle.block_on(put)?.then_some(version))
    }
}

/// A file a commit adds.
struct Add {
    /// Relative to the table root, not encoded.
    path: String,
    size: u64,
    rows: u64,
    /// Its statistics as JSON (see [`crate::sink::stats`]), when written with them.
    stats: Option<String>,
}

impl Add {
    /// The add action's `stats`: the file's statistics, or its row count only.
    fn stats(&self) -> String {
        match &self.stats {
            Some(stats) => stats.clone(),
            None => serde_json::json!({"numRecords": self.rows}).to_string(),
        }
    }
}

/// `commitInfo.ddbsnap` as written: the run's manifest without its files and schema, the run's
/// folder and the table's shape (read back as [`log::Record`]).
#[derive(Serialize)]
struct RecordOut<'a> {
    #[serde(flatten)]
    manifest: serde_json::Value,
    run: &'a str,
    shape: &'a TableShape,
}

/// What one commit adds, and what it records about the run.
pub(super) struct Commit {
    /// The run's application id in `txn` actions (none for a compaction, which no run resumes).
    app_id: Option<String>,
    /// `WRITE` (a full refresh), `MERGE` or `OPTIMIZE`, as Delta's own writers name them.
    operation: &'static str,
    /// False for a commit that only rearranges rows (a compaction): readers of changes skip it.
    data_change: bool,
    /// The table schema of the run's files.
    schema: StructType,
    /// The files it adds.
    files: Vec<Add>,
    /// The run's record for `commitInfo.ddbsnap` (see [`log::Record`]).
    info: String,
    /// Operation metrics, as Delta's own writers name them.
    metrics: Vec<(&'static str, String)>,
    merge: Option<MergeStats>,
    /// `delta.columnMapping.maxColumnId` after the commit, on a table with column mapping.
    max_column_id: Option<i64>,
}

impl Commit {
    /// A full refresh: the run's files, with the run's schema and shape. Into a table with
    /// column mapping (`mapping`, the table's), the files are first written again under
    /// physical names (see [`stored_under`]).
    pub(super) fn refresh(run: &Run, mapping: Option<&Mapping>, handle: &Handle) -> Result<Self> {
        let manifest = &run.manifest;
        let arrow = &manifest.schema.arrow;
        let mapping = mapping.map(|m| m.extended(arrow));
        let files = match &mapping {
            Some(mapping) => stored_under(run, mapping, handle)?,
            None => manifest.files.clone(),
        };
        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
        let metrics = vec![
            ("numFiles", files.len().to_string()),
            ("numOutputRows", manifest.totals.items_written.to_string()),
            ("numOutputBytes", bytes.to_string()),
        ];
        Commit::new(run, arrow, &files, &run.shape, metrics)?.mapped(mapping.as_ref(), arrow)
    }

    /// A commit of `run` adding `files` (in the run's folder) whose schema is `arrow`; the
    /// record says the table's shape is now `shape`.
    pub(super) fn new(
        run: &Run,
        arrow: &Schema,
        files: &[DataFile],
        shape: &TableShape,
        metrics: Vec<(&'static str, String)>,
    ) -> Result<Self> {
        let mut manifest = serde_json::to_value(&run.manifest)
            .map_err(|e| Error::Internal(format!("serializing the run: {e}")))?;
        if let Some(o) = manifest.as_object_mut() {
            o.remove("files");
            o.remove("schema");
        }
        // The shape is serialized as itself, not through a `Value` (whose maps sort their
        // keys): its column order is the table's.
        let record = serde_json::to_string(&RecordOut {
            manifest,
            run: &run.name,
            shape,
        })
        .map_err(|e| Error::Internal(format!("serializing the run: {e}")))?;
        let mut commit = Commit::compaction(&run.name, record, arrow, files, metrics)?;
        commit.app_id = Some(run.app_id());
        commit.operation = "WRITE";
        commit.data_change = true;
        Ok(commit)
    }

    /// A compaction (`OPTIMIZE`, no data change) adding `files` of the folder `folder` whose
    /// schema is `arrow`, carrying the table's latest ddbsnap record `record` unchanged.
    pub(super) fn compaction(
        folder: &str,
        record: String,
        arrow: &Schema,
        files: &[DataFile],
        metrics: Vec<(&'static str, String)>,
    ) -> Result<Self> {
        let schema = StructType::try_from_arrow(arrow).map_err(|e| {
            Error::Internal(format!("the run's schema has no Delta equivalent: {e}"))
        })?;
        Ok(Commit {
            app_id: None,
            operation: "OPTIMIZE",
            data_change: false,
            schema,
            files: files
                .iter()
                .map(|f| Add {
                    path: format!("{folder}/{}", f.path),
                    size: f.bytes,
                    rows: f.rows,
                    stats: f.stats.clone(),
                })
                .collect(),
            info: record,
            metrics,
            merge: None,
            max_column_id: None,
        })
    }

    /// The same commit to a table with the column mapping `mapping` (already extended to the
    /// commit's columns, see [`Mapping::extended`]): its schema `arrow` under the mapping's
    /// names. Unchanged when there is none.
    pub(super) fn mapped(mut self, mapping: Option<&Mapping>, arrow: &Schema) -> Result<Self> {
        if let Some(mapping) = mapping {
            self.schema = mapping.schema(arrow)?;
            self.max_column_id = Some(mapping.max_id);
        }
        Ok(self)
    }

    /// The same commit as a MERGE that did `stats`.
    pub(super) fn merged(mut self, stats: MergeStats) -> Self {
        self.operation = "MERGE";
        self.merge = Some(stats);
        self
    }
    /// The schema as a `metaData.schemaString`.
    pub(super) fn schema_string(&self) -> Result<String> {
        serde_json::to_string(&self.schema)
            .map_err(|e| Error::Internal(format!("serializing the schema: {e}")))
    }

    /// The add-file metadata the kernel takes: path, no partition values, size, modification
    /// time (now) and the files' statistics, read as the table's statistics schema
    /// `stats_schema` has them (statistics of columns it does not name are left out).
    pub(super) fn adds(&self, stats_schema: &StructType) -> Result<RecordBatch> {
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
        let stats = self.stats_array(stats_schema)?;
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
                    self.files.iter().map(|f| f.path.as_str()),
                )),
                Arc::new(partitions),
                Arc::new(Int64Array::from_iter_values(
                    self.files.iter().map(|f| f.size as i64),
                )),
                Arc::new(Int64Array::from_iter_values(self.files.iter().map(|_| now))),
                Arc::new(stats),
            ],
        )
        .map_err(|e| Error::Internal(format!("building add actions: {e}")))
    }

    /// The files' statistics as one struct column of the schema `stats_schema`.
    fn stats_array(&self, stats_schema: &StructType) -> Result<StructArray> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("reading file statistics as the table's: {e}"))
        };
        let schema = Schema::try_from_kernel(stats_schema).map_err(|e| fail(&e))?;
        let mut decoder = arrow_json::ReaderBuilder::new(Arc::new(schema))
            .with_strict_mode(false)
            .with_batch_size(self.files.len().max(1))
            .build_decoder()
            .map_err(|e| fail(&e))?;
        let mut text = String::new();
        for file in &self.files {
            text.push_str(&file.stats());
            text.push('\n');
        }
        decoder.decode(text.as_bytes()).map_err(|e| fail(&e))?;
        let batch = decoder.flush().map_err(|e| fail(&e))?;
        Ok(match batch {
            Some(batch) => StructArray::from(batch),
            None => StructArray::new_empty_fields(0, None),
        })
    }

    /// `commitInfo.ddbsnap` as the kernel takes engine commit info: one row, one string.
    pub(super) fn engine_info(&self) -> Result<(ArrowEngineData, Arc<StructType>)> {
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
    pub(super) fn json_lines(&self, operation: &str, actions: Vec<serde_json::Value>) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        let mut lines = vec![serde_json::json!({"commitInfo": {
            "timestamp": now,
            "operation": operation,
            "operationParameters": match self.operation {
                "MERGE" => serde_json::json!({"predicate": "primary key"}),
                _ => serde_json::json!({"mode": "Overwrite"}),
            },
            "operationMetrics": self.metrics.iter().cloned().collect::<HashMap<_, _>>(),
            "engineInfo": format!("ddbsnap/{}", env!("CARGO_PKG_VERSION")),
            "isBlindAppend": false,
            "ddbsnap": self.info,
        }})];
        lines.extend(actions);
        if let Some(app_id) = &self.app_id {
            lines.push(serde_json::json!({"txn": {
                "appId": app_id, "version": 1, "lastUpdated": now,
            }}));
        }
        for file in &self.files {
            lines.push(serde_json::json!({"add": {
                "path": encode_path(&file.path),
                "partitionValues": {},
                "size": file.size,
                "modificationTime": now,
                "dataChange": self.data_change,
                "stats": file.stats(),
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

/// The files of the full refresh `run` (written under column names while the run learned its
/// schema) written again under `mapping`'s physical names, in the run's folder after its own
/// files: what the table adds instead of them. Runs on a blocking thread.
fn stored_under(
    run: &Run,
    mapping: &Mapping,
    handle: &tokio::runtime::Handle,
) -> Result<Vec<crate::sink::DataFile>> {
    let first =
        crate::sink::next_data_file_index(run.manifest.files.iter().map(|f| f.path.as_str()));
    let options = crate::sink::writer::WriterOptions {
        physical: Some(std::sync::Arc::new(mapping.names.clone())),
        ..run.writer.clone()
    };
    let mut writer = crate::sink::writer::RollingWriter::new(
        run.folder.clone(),
        handle.clone(),
        options,
        std::sync::Arc::clone(&run.progress),
        first,
    );
    for file in &run.manifest.files {
        crate::sink::rewrite::reencode(
            &mut writer,
            &run.folder,
            &file.path,
            &run.manifest.schema.columns,
        )?;
    }
    writer.finish()
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

/// Version 0 of a new table, at protocol reader 1 / writer 2; with column mapping by name
/// (the commit is [`Commit::mapped`]), reader 3 / writer 7 with the one table feature
/// `columnMapping` (the legacy 2 / 5 would also oblige every writer to enforce CHECK
/// constraints and the rest of writer versions 3 and 4, which the kernel refuses to promise,
/// and a reader-writer feature is listed for readers too); `None` when another writer created
/// the table first.
/// Its table properties name the DynamoDB table and its key schema (`ddbsnap.table`,
/// `ddbsnap.keySchema`: the key attributes, their key and attribute types, as JSON).
pub(super) async fn create(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    commit: &Commit,
    source: &crate::table::TableInfo,
) -> Result<Option<DeltaCommit>> {
    let schema = commit.schema_string()?;
    let key_schema = serde_json::to_string(&source.key_schema)
        .map_err(|e| Error::Internal(format!("serializing the key schema: {e}")))?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut configuration = serde_json::json!({
        "ddbsnap.table": source.name,
        "ddbsnap.keySchema": key_schema,
    });
    let protocol = match commit.max_column_id {
        None => serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 2}),
        Some(max) => {
            configuration[super::mapping::MODE] = "name".into();
            configuration[super::mapping::MAX_COLUMN_ID] = max.to_string().into();
            serde_json::json!({
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["columnMapping"],
                "writerFeatures": ["columnMapping"],
            })
        }
    };
    let actions = vec![
        serde_json::json!({ "protocol": protocol }),
        serde_json::json!({"metaData": {
            "id": super::mapping::uuid_v4(),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema,
            "partitionColumns": [],
            "configuration": configuration,
            "createdTime": now,
        }}),
    ];
    let text = commit.json_lines("CREATE TABLE AS SELECT", actions);
    if !put_version(table, store, log, 0, text).await? {
        return Ok(None);
    }
    Ok(Some(DeltaCommit {
        version: 0,
        files_removed: 0,
        files_added: commit.files.len(),
        merge: commit.merge,
        already_committed: false,
        log_checkpoint: false,
        log_files_removed: 0,
        attempts: 1,
    }))
}

/// Write log version `version` only if no other writer has: a conditional put. `false` when
/// another writer had.
async fn put_version(
    table: &Target,
    store: &Arc<dyn ObjectStore>,
    log: &Path,
    version: u64,
    text: String,
) -> Result<bool> {
    let path = log.clone().join(format!("{version:020}.json"));
    let options = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&path, text.into(), options).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(table.error(&format!("writing Delta log version {version}"), e)),
    }
}

/// What one try of a commit came to.
pub(super) enum Attempt {
    /// Committed.
    Done(DeltaCommit),
    /// Another writer took this version first.
    Conflict(u64),
}

/// The columns `new` has that `current` lacks, as (parent, field) for the kernel's
/// `add_column_at` (`None`: top level), made nullable; `Err` names a change that is not an
/// addition (a column whose type changed). Columns `new` lacks stay in the table (null in the
/// new files), and column order does not matter (Delta reads Parquet columns by name).
pub(super) fn additions(
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

/// Run `work` on the latest version of the existing Delta table at `table`, on a blocking
/// thread: the kernel is synchronous and runs its own I/O executor, so it stays off the async
/// workers.
pub(super) async fn on_table<T, F>(table: &Target, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Delta<'_>) -> Result<T> + Send + 'static,
{
    let (store, url) = location(table)?;
    let log = log_path(&url)?;
    let table = table.clone();
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let engine = DefaultEngineBuilder::new(Arc::clone(&store)).build();
        let snapshot = Snapshot::builder_for(url.as_str())
            .build(&engine)
            .map_err(|e| table_error(&table, "reading the Delta log", e))?;
        work(&Delta {
            table: &table,
            store: &store,
            url: &url,
            log: &log,
            engine: &engine,
            snapshot,
            handle: &handle,
        })
    })
    .await
    .map_err(|e| Error::Internal(format!("the Delta commit thread failed: {e}")))?
}

/// The log upkeep after the commit `done` (see [`super::checkpoint::upkeep`]), recorded in it; a
/// failure is a warning, since the commit counts once it is in the log.
pub(super) fn upkeep_after(delta: &Delta<'_>, done: &mut DeltaCommit, progress: &dyn Progress) {
    let store = Arc::clone(delta.store);
    match super::checkpoint::upkeep(store, delta.url, delta.log, done.version, delta.handle) {
        Ok(upkeep) => {
            done.log_checkpoint = upkeep.checkpoint;
            done.log_files_removed = upkeep.removed;
        }
        Err(e) => progress.event(&ProgressEvent::Warning {
            message: format!(
                "version {} is committed, but its log upkeep failed ({e}); readers replay the \
                 JSON commits until the next checkpoint",
                done.version
            ),
        }),
    }
}
