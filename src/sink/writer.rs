//! The rolling Parquet writer.
//!
//! Runs on the conversion thread (synchronous, off the network tasks). Encoding and compression
//! happen here; the encoded bytes go to an `object_store` [`BufWriter`], which turns into a
//! multipart upload once a file passes one part (uploads run on the async runtime in the
//! background, at most a few parts in flight). A file is closed when the resolved schema
//! changes, and when the caller decides to roll it ([`RollingWriter::roll_due`]: past the
//! target size or open too long); the caller picks the moment so files close only between Scan
//! pages, which is what makes checkpoints exact. Every closed file is recorded as a
//! [`DataFile`] with the schema it was written with, so files written before the schema settled
//! can be re-encoded to the final schema before the commit (every file of a snapshot has the
//! same schema).
//!
//! Memory: one in-progress row group (bounded by `row_group_bytes`), plus one upload chunk and
//! the parts in flight; before that, a file's first rows, held as the sample that decides its
//! columns' dictionaries (at most 1,000 rows or 4 MiB).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::physical::{PhysicalNames, retype};
use super::stats::FileStats;
use super::{Target, dictionary};
use crate::convert::{Columns, Item, Rows, arrow_schema_with_keys, encode_rows};
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Zstandard (default), at `--zstd-level` (default 1: fast; higher levels trade CPU for
    /// smaller files).
    #[default]
    Zstd,
    /// Snappy: fastest, larger files.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// Gzip level 6.
    Gzip,
    /// No compression.
    None,
}

impl Compression {
    fn parquet(self, zstd_level: i32) -> parquet::basic::Compression {
        use parquet::basic::Compression as C;
        match self {
            Compression::Zstd => C::ZSTD(ZstdLevel::try_new(zstd_level).unwrap_or_default()),
            Compression::Snappy => C::SNAPPY,
            Compression::Lz4 => C::LZ4_RAW,
            Compression::Gzip => C::GZIP(GzipLevel::default()),
            Compression::None => C::UNCOMPRESSED,
        }
    }
}

/// One closed data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the snapshot root.
    pub path: String,
    /// Number of rows (items).
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// The file's column statistics as the JSON of a Delta add action's `stats` (see
    /// `sink::stats`), for the formats that keep them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// The schema this file was written with.
    #[serde(skip)]
    pub(crate) columns: Columns,
}

/// Default zstd level: fast, with files close to what level 3 gives.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// Default size at which a row group is flushed (bounds the writer's memory).
pub const DEFAULT_ROW_GROUP_BYTES: usize = 16 << 20;
/// Default multipart upload part size (files smaller than this are one PUT).
pub const DEFAULT_PART_BYTES: usize = 5 << 20;

/// Settings of the writer.
#[derive(Debug, Clone)]
pub(crate) struct WriterOptions {
    pub(crate) compression: Compression,
    pub(crate) zstd_level: i32,
    pub(crate) target_file_bytes: usize,
    pub(crate) row_group_bytes: usize,
    pub(crate) part_bytes: usize,
    /// Key-value metadata written into every file (table, key schema, tool version).
    pub(crate) metadata: Vec<KeyValue>,
    /// The key attributes: their columns are non-nullable.
    pub(crate) key_columns: Vec<String>,
    /// Collect each file's column statistics (a Delta table's add actions carry them).
    pub(crate) file_stats: bool,
    /// The names the files store columns under, when not their column names (see
    /// [`super::physical`]).
    pub(crate) physical: Option<Arc<PhysicalNames>>,
}

impl WriterOptions {
    /// The settings for rewriting files of a table (a compaction) of the DynamoDB table `name`
    /// with the keys `key_schema`: the default compression and sizes, files of
    /// `target_file_bytes`, with statistics when `file_stats`.
    pub(crate) fn rewriting(
        name: &str,
        key_schema: &[crate::table::KeyAttribute],
        target_file_bytes: usize,
        file_stats: bool,
    ) -> Result<Self> {
        Ok(WriterOptions {
            compression: Compression::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            target_file_bytes,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            part_bytes: DEFAULT_PART_BYTES,
            metadata: file_metadata(name, key_schema)?,
            key_columns: key_schema.iter().map(|k| k.name.clone()).collect(),
            file_stats,
            physical: None,
        })
    }
}

/// The key-value metadata of every data file: the DynamoDB table's name and key schema, and
/// ddbsnap's version.
pub(crate) fn file_metadata(
    name: &str,
    key_schema: &[crate::table::KeyAttribute],
) -> Result<Vec<KeyValue>> {
    let key_schema = serde_json::to_string(key_schema)
        .map_err(|e| Error::Internal(format!("serializing the key schema: {e}")))?;
    Ok(vec![
        KeyValue::new("ddbsnap.table".to_owned(), name.to_owned()),
        KeyValue::new("ddbsnap.key_schema".to_owned(), key_schema),
        KeyValue::new(
            "ddbsnap.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

/// Metadata key holding the file's [`Columns`] as JSON.
pub(crate) const COLUMNS_METADATA_KEY: &str = "ddbsnap.columns";

/// Encoded bytes on their way to the object store. `write` buffers; full chunks are handed to
/// the `BufWriter` with `block_on`, which returns as soon as the part upload is under way.
struct Upload {
    handle: Handle,
    inner: Option<BufWriter>,
    pending: Vec<u8>,
    chunk: usize,
}

impl Upload {
    fn send_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(std::mem::take(&mut self.pending));
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already closed"))?;
        self.handle
            .block_on(inner.put(bytes))
            .map_err(std::io::Error::other)
    }

    fn complete(&mut self) -> std::result::Result<(), object_store::Error> {
        self.send_pending()
            .map_err(|e| object_store::Error::Generic {
                store: "upload",
                source: Box::new(e),
            })?;
        if let Some(mut inner) = self.inner.take() {
            use tokio::io::AsyncWriteExt;
            self.handle
                .block_on(inner.shutdown())
                .map_err(|e| object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            // Best effort: the upload is being abandoned because of another error.
            let _ = self.handle.block_on(inner.abort());
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= self.chunk {
            self.send_pending()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Rows of a file's first batches that decide its columns' dictionaries (see
/// [`dictionary`]); fewer when they reach [`SAMPLE_BYTES`] (or the target file size) first,
/// or when the file closes.
const SAMPLE_ROWS: usize = 1000;
/// Bytes of Arrow data the sample holds at most.
const SAMPLE_BYTES: usize = 4 << 20;

struct OpenFile {
    encoder: Encoder,
    /// The file's statistics, when collected.
    stats: Option<FileStats>,
    name: String,
    columns: Columns,
    /// The column schema items are encoded with.
    schema: arrow_schema::SchemaRef,
    /// The schema the file stores them under: the column schema, or its physical names.
    file_schema: arrow_schema::SchemaRef,
    opened: Instant,
}

/// A file's Parquet encoding: its first batches are held as a sample until they decide its
/// properties, then every batch goes to the Parquet writer.
enum Encoder {
    Sampling {
        upload: Upload,
        properties: WriterPropertiesBuilder,
        batches: Vec<RecordBatch>,
        rows: usize,
        bytes: usize,
    },
    Writing(ArrowWriter<Upload>),
    /// The Parquet writer failed to open (its upload was aborted when dropped).
    Failed,
}

impl OpenFile {
    /// Add `batch` to the file.
    fn write(&mut self, batch: RecordBatch, opts: &WriterOptions) -> parquet::errors::Result<()> {
        if let Encoder::Sampling {
            batches,
            rows,
            bytes,
            ..
        } = &mut self.encoder
        {
            *rows += batch.num_rows();
            *bytes += batch.get_array_memory_size();
            batches.push(batch);
            // The sample ends before it could pass the target size (its Arrow bytes are more
            // than its Parquet bytes), so the file rolls on Parquet's own size as ever.
            if *rows < SAMPLE_ROWS && *bytes < SAMPLE_BYTES.min(opts.target_file_bytes) {
                return Ok(());
            }
        } else {
            self.writer()?.write(&batch)?;
        }
        let writer = self.writer()?;
        if writer.in_progress_size() >= opts.row_group_bytes {
            writer.flush()?;
        }
        Ok(())
    }

    /// The file's Parquet writer: opened, with the columns' dictionaries decided by the sample
    /// and the sample written, if it was not yet.
    fn writer(&mut self) -> parquet::errors::Result<&mut ArrowWriter<Upload>> {
        if matches!(self.encoder, Encoder::Sampling { .. }) {
            let Encoder::Sampling {
                upload,
                properties,
                batches,
                ..
            } = std::mem::replace(&mut self.encoder, Encoder::Failed)
            else {
                unreachable!("matched above")
            };
            let properties = dictionary::plain_columns(&self.file_schema, &batches)
                .into_iter()
                .fold(properties, |p, column| {
                    p.set_column_dictionary_enabled(column, false)
                })
                .build();
            let mut writer =
                ArrowWriter::try_new(upload, Arc::clone(&self.file_schema), Some(properties))?;
            for batch in &batches {
                writer.write(batch)?;
            }
            self.encoder = Encoder::Writing(writer);
        }
        match &mut self.encoder {
            Encoder::Writing(writer) => Ok(writer),
            _ => Err(parquet::errors::ParquetError::General(
                "the file's Parquet writer failed to open".into(),
            )),
        }
    }

    /// Parquet bytes written and buffered so far (none while sampling: the sample ends before
    /// the target size).
    fn size(&self) -> usize {
        match &self.encoder {
            Encoder::Writing(writer) => writer.bytes_written() + writer.in_progress_size(),
            Encoder::Sampling { .. } | Encoder::Failed => 0,
        }
    }

    /// Abandon the file, aborting its upload.
    fn abort(&mut self) {
        match &mut self.encoder {
            Encoder::Sampling { upload, .. } => upload.abort(),
            Encoder::Writing(writer) => writer.inner_mut().abort(),
            Encoder::Failed => {}
        }
    }
}

/// Writes items to rolling Parquet files under a target.
pub(crate) struct RollingWriter {
    target: Target,
    handle: Handle,
    opts: WriterOptions,
    progress: Arc<dyn Progress>,
    current: Option<OpenFile>,
    files: Vec<DataFile>,
    /// The next data file number, shared with the other writers of the run (the conversion
    /// lanes), so no two files get one name.
    next_index: Arc<AtomicUsize>,
    /// The name of the one file this writer writes, when it writes one under a given name (a
    /// file re-encoded in place of another); it then never rolls.
    named: Option<String>,
}

impl RollingWriter {
    pub(crate) fn new(
        target: Target,
        handle: Handle,
        opts: WriterOptions,
        progress: Arc<dyn Progress>,
        first_index: usize,
    ) -> Self {
        RollingWriter {
            target,
            handle,
            opts,
            progress,
            current: None,
            files: Vec::new(),
            next_index: Arc::new(AtomicUsize::new(first_index)),
            named: None,
        }
    }

    /// This writer, writing everything into one file named `name` (relative to its target).
    pub(crate) fn named(mut self, name: String) -> Self {
        self.named = Some(name);
        self
    }

    /// This writer, numbering its files from `numbers`, a counter other writers of the same
    /// run share.
    pub(crate) fn numbered_by(mut self, numbers: Arc<AtomicUsize>) -> Self {
        self.next_index = numbers;
        self
    }

    fn open(&mut self, columns: &Columns) -> Result<()> {
        let name = match &self.named {
            Some(name) if self.files.is_empty() => name.clone(),
            Some(name) => {
                return Err(Error::Internal(format!("{name} would be written twice")));
            }
            None => self
                .target
                .data_file_name(self.next_index.fetch_add(1, Ordering::Relaxed)),
        };
        let schema = arrow_schema_with_keys(columns, &self.opts.key_columns);
        let file_schema = match &self.opts.physical {
            Some(physical) => physical.file_schema(&schema)?,
            None => Arc::clone(&schema),
        };
        let mut metadata = self.opts.metadata.clone();
        metadata.push(KeyValue::new(
            COLUMNS_METADATA_KEY.to_owned(),
            serde_json::to_string(columns).map_err(|e| Error::Internal(e.to_string()))?,
        ));
        let properties = WriterProperties::builder()
            .set_compression(self.opts.compression.parquet(self.opts.zstd_level))
            .set_key_value_metadata(Some(metadata))
            .set_max_row_group_row_count(Some(1 << 20))
            .set_created_by(format!("ddbsnap {}", env!("CARGO_PKG_VERSION")));
        let upload = Upload {
            handle: self.handle.clone(),
            inner: Some(
                BufWriter::with_capacity(
                    Arc::clone(&self.target.store),
                    self.target.path(&name),
                    self.opts.part_bytes,
                )
                .with_max_concurrency(2),
            ),
            pending: Vec::with_capacity(1 << 20),
            chunk: (1 << 20).min(self.opts.part_bytes),
        };
        let stats = match self.opts.file_stats {
            true => Some(FileStats::new(&file_schema)?),
            false => None,
        };
        self.current = Some(OpenFile {
            stats,
            encoder: Encoder::Sampling {
                upload,
                properties,
                batches: Vec::new(),
                rows: 0,
                bytes: 0,
            },
            name,
            columns: columns.clone(),
            schema,
            file_schema,
            opened: Instant::now(),
        });
        Ok(())
    }

    /// [`Self::write`] of items in the SDK's type (read back from a data file).
    pub(crate) fn write_items(&mut self, columns: &Columns, items: &[Item]) -> Result<()> {
        self.write(columns, &Rows::from_items(items)?)
    }

    /// Append `items`, all observed by the shape `columns` was resolved from. Closes the open
    /// file first if it has other columns; never closes it for its size (see [`Self::roll_due`]).
    pub(crate) fn write(&mut self, columns: &Columns, items: &Rows) -> Result<()> {
        if self.columns_differ(columns) {
            self.close_current()?;
        }
        if self.current.is_none() {
            self.open(columns)?;
        }
        let file = self.current.as_mut().expect("opened above");
        let mut batch = encode_rows(columns, &file.schema, items)?;
        if !Arc::ptr_eq(&file.schema, &file.file_schema) {
            batch = retype(&batch, Arc::clone(&file.file_schema))?;
        }
        if let Some(stats) = &mut file.stats {
            stats.add(&batch)?;
        }
        file.write(batch, &self.opts)
            .map_err(|e| parquet_error(&self.target.url, &file.name, e))
    }

    /// True when a file is open with columns other than `columns` (the next write closes it).
    pub(crate) fn columns_differ(&self, columns: &Columns) -> bool {
        self.current.as_ref().is_some_and(|f| &f.columns != columns)
    }

    /// True when the open file has reached the target size, or has been open for `max_age`.
    pub(crate) fn roll_due(&self, max_age: Option<Duration>) -> bool {
        self.named.is_none()
            && self.current.as_ref().is_some_and(|f| {
                f.size() >= self.opts.target_file_bytes
                    || max_age.is_some_and(|age| f.opened.elapsed() >= age)
            })
    }

    /// Finish the open file (footer, upload completion) and record it. Returns whether a file
    /// was open.
    pub(crate) fn close_current(&mut self) -> Result<bool> {
        let Some(mut file) = self.current.take() else {
            return Ok(false);
        };
        let name = file.name.clone();
        let writer = file
            .writer()
            .map_err(|e| parquet_error(&self.target.url, &name, e))?;
        let meta = writer
            .finish()
            .map_err(|e| parquet_error(&self.target.url, &name, e))?;
        let bytes = writer.bytes_written() as u64;
        writer
            .inner_mut()
            .complete()
            .map_err(|e| self.target.error(&format!("uploading {name}"), e))?;
        let rows = meta.file_metadata().num_rows() as u64;
        let stats = file
            .stats
            .take()
            .map(FileStats::finish)
            .transpose()?
            .flatten();
        self.progress.event(&ProgressEvent::FileWritten {
            path: file.name.clone(),
            rows,
            bytes,
        });
        self.files.push(DataFile {
            path: file.name,
            rows,
            bytes,
            stats,
            columns: file.columns,
        });
        Ok(true)
    }

    /// Every file closed so far.
    pub(crate) fn files(&self) -> &[DataFile] {
        &self.files
    }

    /// Close the open file and return every file written.
    pub(crate) fn finish(mut self) -> Result<Vec<DataFile>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.files))
    }

    /// Abandon the open file, aborting its upload (no orphaned multipart parts).
    pub(crate) fn abort(&mut self) {
        if let Some(mut file) = self.current.take() {
            file.abort();
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for RollingWriter {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The target path of a data file.
pub(crate) fn file_path(target: &Target, file: &DataFile) -> Path {
    target.path(&file.path)
}

/// Writing failures surface as parquet errors wrapping the store's I/O error.
fn parquet_error(url: &str, name: &str, e: parquet::errors::ParquetError) -> Error {
    Error::Destination {
        url: url.to_owned(),
        message: format!("writing {name} failed: {}", crate::aws::root_cause(&e)),
        source: Some(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::convert::{NumberMode, TableShape};
    use crate::progress::NoProgress;
    use crate::sink::reader::FileItems;
    use crate::sink::{Destination, S3Options};

    /// A writer of `target_file_bytes` files into `dir`, keyed by `pk`.
    fn local_writer(
        dir: &std::path::Path,
        runtime: &tokio::runtime::Runtime,
        target_file_bytes: usize,
    ) -> RollingWriter {
        let destination = Destination::Local(dir.to_owned());
        let target = runtime
            .block_on(Target::open(&destination, None, &S3Options::default()))
            .unwrap();
        let options = WriterOptions {
            compression: Compression::Zstd,
            zstd_level: 1,
            target_file_bytes,
            row_group_bytes: 16 << 20,
            part_bytes: 5 << 20,
            metadata: Vec::new(),
            key_columns: vec!["pk".to_owned()],
            file_stats: false,
            physical: None,
        };
        RollingWriter::new(
            target,
            runtime.handle().clone(),
            options,
            Arc::new(NoProgress),
            0,
        )
    }

    fn columns_of(items: &[Item]) -> Columns {
        let mut shape = TableShape::with_key_names(["pk"]);
        items.iter().for_each(|i| shape.observe(i).unwrap());
        shape.resolve(NumberMode::Exact)
    }

    /// What a file's first 1,000 rows show decides, column by column, whether the file's
    /// chunks carry a dictionary, however small its first pages (a Scan's first page is);
    /// the values come back the same either way.
    #[test]
    fn a_file_drops_the_dictionary_of_the_columns_its_first_rows_show_unique() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let items: Vec<Item> = (0..2500)
            .map(|i| {
                Item::from([
                    ("pk".to_owned(), AV::S(format!("order-{i}"))),
                    (
                        "status".to_owned(),
                        AV::S(["new", "paid"][i % 2].to_owned()),
                    ),
                    ("n".to_owned(), AV::N(i.to_string())),
                ])
            })
            .collect();
        let columns = columns_of(&items);
        let mut writer = local_writer(dir.path(), &runtime, 128 << 20);
        // Pages of 5 items, then of 300: the sample ends within the fourth page, and every
        // page after it goes straight to Parquet.
        let (first, rest) = items.split_at(5);
        writer.write_items(&columns, first).unwrap();
        for page in rest.chunks(300) {
            writer.write_items(&columns, page).unwrap();
        }
        let target = writer.target().clone();
        let files = writer.finish().unwrap();
        assert_eq!(files.len(), 1);

        let file = std::fs::File::open(dir.path().join(&files[0].path)).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let mut dictionary = Vec::new();
        for group in reader.metadata().row_groups() {
            for chunk in group.columns() {
                let encodings: Vec<Encoding> = chunk.encodings().collect();
                dictionary.push((
                    chunk.column_path().string(),
                    encodings.contains(&Encoding::RLE_DICTIONARY),
                ));
            }
        }
        dictionary.sort();
        assert_eq!(
            dictionary,
            [
                ("n".to_owned(), false),
                ("pk".to_owned(), false),
                ("status".to_owned(), true)
            ]
        );
        let back = runtime.block_on(async {
            let mut file = FileItems::open(&target, &files[0].path).await.unwrap();
            let mut back = Vec::new();
            while let Some(batch) = file.next_batch().await.unwrap() {
                back.extend(batch);
            }
            back
        });
        assert_eq!(back, items);
    }

    /// Files roll at the target size on Parquet's estimate of their size, sample or not: the
    /// sample ends at the target size, so a file of large items does not pass it by a whole
    /// sample before its first check (1,000 of these items are 3 MB).
    #[test]
    fn files_roll_at_the_target_size_while_sampling_too() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random_hex = |len: usize| -> String {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b"0123456789abcdef"[(state % 16) as usize])
                })
                .collect()
        };
        let items: Vec<Item> = (0..2000)
            .map(|i| {
                Item::from([
                    ("pk".to_owned(), AV::S(format!("order-{i}"))),
                    ("pad".to_owned(), AV::S(random_hex(3000))),
                ])
            })
            .collect();
        let columns = columns_of(&items);
        let target = 1 << 20;
        let mut writer = local_writer(dir.path(), &runtime, target);
        for page in items.chunks(50) {
            writer.write_items(&columns, page).unwrap();
            // As the lanes do: files close between pages.
            if writer.roll_due(None) {
                writer.close_current().unwrap();
            }
        }
        let files = writer.finish().unwrap();
        assert!(files.len() >= 3, "{files:?}");
        for file in &files {
            assert!(
                file.bytes <= target as u64,
                "{} of {} bytes",
                file.path,
                file.bytes
            );
        }
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        assert_eq!(rows, items.len() as u64);
    }
}
