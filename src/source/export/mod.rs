//! Reading a DynamoDB export (Export to S3) that already exists.
//!
//! Layout, as AWS documents it (`<prefix>/` is absent when the export was asked for without a
//! prefix):
//!
//! ```text
//! <prefix>/AWSDynamoDB/<export-id>/_started, manifest-summary.json, manifest-files.json,
//!                                  and their .checksum / .md5 files
//! <prefix>/AWSDynamoDB/<export-id>/data/<name>.json.gz   a full export's data files
//! <prefix>/AWSDynamoDB/data/<name>.json.gz               an incremental export's data files, in
//!                                                        a folder SHARED by every incremental
//!                                                        export to that prefix
//! ```
//!
//! `manifest-summary.json` holds exportArn, tableArn, exportTime, exportType, outputFormat,
//! itemCount, s3Bucket, s3Prefix and manifestFilesS3Key; `manifest-files.json` one JSON object
//! per data file: dataFileS3Key (the object key from the bucket root), itemCount, md5Checksum.
//! Data files are gzip JSON lines, `{"Item":{...DynamoDB JSON...}}` in full exports and change
//! records in incremental ones, or gzip Ion text for ION exports (see `ion`).
//!
//! Data files are found from their `dataFileS3Key` alone, placed relative to the export's own
//! folder (whose key is the folder of `manifestFilesS3Key`), never from folder names: the same
//! rule reads the export in its bucket, in another bucket it was copied to, and in a local copy
//! of its prefix or of the whole bucket (`aws s3 sync`). Only the files the manifest lists are
//! read, so exports sharing a `data/` folder never see each other's files.
//!
//! Each data file is streamed on a blocking thread: its bytes are hashed as they arrive (the
//! MD5 must match `md5Checksum`), gunzipped and parsed line by line, and its items go to the
//! conversion thread in batches, through the same channel, schema inference, encoding and
//! commit as a scan. Memory is one download chunk, the gzip window and one batch per file being
//! read. A checksum or item-count mismatch, a truncated gzip stream or a malformed line fails the
//! run: nothing is committed.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::convert::{Item, Rows};
use crate::cursor::Position;
use crate::error::{Error, Result};
use crate::sink::Target;
use crate::window::{ChangeWindow, Feed};

use super::scan::{Page, PageSink};

mod changes;
mod control;

pub use changes::CHANGE_COLUMNS;
use changes::{LineFormat, parse_any_line, parse_line};
pub use control::{
    CompletedExport, ExportRequest, IncrementalRange, IncrementalWindow, MAX_WINDOW, MIN_WINDOW,
    earliest_restorable, run_export, split_window,
};

/// Items per batch sent to the conversion thread: about a Scan page's worth (a page is at most
/// 1 MB). Readers parse faster than one conversion thread converts, so the batches in flight
/// (one filling per reader, one waiting per reader, the channel's) are usually all full: their
/// size is what bounds the memory of a conversion.
const BATCH_ITEMS: usize = 1000;

/// A batch also ends once its strings, numbers and binaries reach this size, so a file of large
/// items (up to DynamoDB's 400 KB each) travels in batches of the size ordinary ones do.
const BATCH_BYTES: usize = 2 << 20;

/// `manifest-summary.json`, the fields ddbsnap uses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    /// The export's ARN.
    #[serde(default)]
    pub export_arn: Option<String>,
    /// The exported table's ARN.
    #[serde(default)]
    pub table_arn: Option<String>,
    /// The point in time the export reflects.
    #[serde(default)]
    pub export_time: Option<String>,
    /// `FULL_EXPORT` or `INCREMENTAL_EXPORT`.
    #[serde(default)]
    pub export_type: Option<String>,
    /// `DYNAMODB_JSON` or `ION`.
    #[serde(default)]
    pub output_format: Option<String>,
    /// Items exported.
    #[serde(default)]
    pub item_count: Option<u64>,
    /// Key of manifest-files.json in the bucket.
    #[serde(default)]
    pub manifest_files_s3_key: Option<String>,
    /// The bucket the export was written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// The prefix it was written under (absent or null for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<String>,
    /// Incremental exports: `NEW_AND_OLD_IMAGES` or `NEW_IMAGE` (`outputView` in the
    /// summaries DynamoDB writes).
    #[serde(default, alias = "outputView")]
    pub export_view_type: Option<String>,
    /// Incremental exports: start of the window.
    #[serde(default)]
    pub export_from_time: Option<String>,
    /// Incremental exports: end of the window.
    #[serde(default)]
    pub export_to_time: Option<String>,
}

impl ExportSummary {
    /// How the export's lines are written.
    fn line_format(&self) -> LineFormat {
        LineFormat {
            ion: self.output_format.as_deref() == Some("ION"),
            old_images: self.export_view_type.as_deref() == Some("NEW_AND_OLD_IMAGES"),
        }
    }

    /// True for an incremental export (its rows become a change log).
    pub fn is_incremental(&self) -> bool {
        self.export_type.as_deref() == Some("INCREMENTAL_EXPORT")
    }

    /// The point in time a full export reflects (`exportTime`).
    pub fn export_time(&self) -> Option<DateTime<Utc>> {
        parse_time(self.export_time.as_deref())
    }

    /// The window of an incremental export (`exportFromTime`, `exportToTime`, named by its
    /// ARN); `None` for a full export. `Err` names the time the summary lacks.
    pub fn change_window(&self) -> std::result::Result<Option<ChangeWindow>, String> {
        if !self.is_incremental() {
            return Ok(None);
        }
        let time = |name: &str, text: &Option<String>| {
            parse_time(text.as_deref()).ok_or_else(|| {
                format!("its manifest-summary.json has no readable {name} (RFC 3339)")
            })
        };
        Ok(Some(ChangeWindow {
            feed: Feed::Export,
            from: time("exportFromTime", &self.export_from_time)?,
            to: time("exportToTime", &self.export_to_time)?,
            id: self.export_arn.clone(),
        }))
    }

    /// The table name, from the table ARN (`arn:aws:dynamodb:region:account:table/NAME`).
    pub fn table_name(&self) -> Option<&str> {
        self.table_arn
            .as_deref()?
            .rsplit_once("table/")
            .map(|(_, n)| n)
    }

    /// The table's region, from the table ARN.
    pub fn region(&self) -> Option<&str> {
        self.table_arn
            .as_deref()?
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
    }

    /// The export's `s3Prefix` without slashes at its ends ("" for none).
    fn prefix(&self) -> &str {
        self.s3_prefix.as_deref().unwrap_or("").trim_matches('/')
    }

    /// The key of the export's own folder in its bucket: the folder of `manifestFilesS3Key`,
    /// else `<s3Prefix>/AWSDynamoDB/<export id>` (the id ends `exportArn`).
    fn folder_key(&self) -> Option<String> {
        if let Some(key) = &self.manifest_files_s3_key {
            return Some(key.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned());
        }
        let id = self.export_arn.as_deref()?.rsplit_once("/export/")?.1;
        let prefix = self.prefix();
        Some(if prefix.is_empty() {
            format!("AWSDynamoDB/{id}")
        } else {
            format!("{prefix}/AWSDynamoDB/{id}")
        })
    }

    /// A `dataFileS3Key` as a key from the bucket root. DynamoDB writes keys from the bucket
    /// root, prefix included; a key that does not start with the summary's `s3Prefix` while
    /// the export's folder does is taken as written relative to the prefix (as some of AWS's
    /// documented examples show), so both forms find the same file.
    fn bucket_key(&self, key: &str, folder: &str) -> String {
        let prefix = self.prefix();
        let under = |k: &str| k.trim_start_matches('/').starts_with(&format!("{prefix}/"));
        if prefix.is_empty() || under(key) || !under(folder) {
            key.to_owned()
        } else {
            format!("{prefix}/{}", key.trim_start_matches('/'))
        }
    }
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportDataFile {
    /// Items in the file.
    pub item_count: u64,
    /// Base64 MD5 of the (gzipped) file.
    pub md5_checksum: String,
    /// Key of the file in the bucket.
    pub data_file_s3_key: String,
}

/// An export opened for reading.
#[derive(Debug, Clone)]
pub struct Export {
    /// The export directory (`.../AWSDynamoDB/<export-id>`).
    pub target: Target,
    /// Its summary.
    pub summary: ExportSummary,
    /// Its data files.
    pub files: Vec<ExportDataFile>,
    /// Where each of `files` is in the target's store.
    paths: Vec<Path>,
}

fn corrupt(export: &Target, message: impl Into<String>) -> Error {
    Error::CorruptExport {
        url: export.url().to_owned(),
        message: message.into(),
    }
}

/// Where the object `key` (from the bucket root) is, given that the export folder, whose key
/// in the bucket is `folder`, is at `root` in the store being read: the folders `key` shares
/// with `folder` are left in place, the rest of `folder` is climbed out of and the rest of
/// `key` walked into. `None` when that climbs above the store's root.
fn locate(root: &Path, folder: &str, key: &str) -> Option<Path> {
    let parts = |s: &'_ str| -> Vec<String> {
        s.split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (folder, key) = (parts(folder), parts(key));
    let shared = folder.iter().zip(&key).take_while(|(a, b)| a == b).count();
    let mut base: Vec<object_store::path::PathPart<'_>> = root.parts().collect();
    let up = folder.len() - shared;
    if up > base.len() {
        return None;
    }
    base.truncate(base.len() - up);
    let mut path: Path = base.into_iter().collect();
    for part in &key[shared..] {
        path = path.join(part.as_str());
    }
    Some(path)
}

impl Export {
    /// Read `manifest-summary.json` and `manifest-files.json` of the export at `target`.
    pub async fn open(target: Target) -> Result<Self> {
        let read = |name: &'static str| {
            let target = target.clone();
            async move {
                let got = match target.store.get(&target.path(name)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => {
                        // S3 answers a GET in a missing bucket as one of a missing object; a
                        // listing tells the two apart.
                        if let Err(e) = target.store.list_with_delimiter(Some(&target.root)).await
                            && Target::is_no_such_bucket(&e)
                        {
                            return Err(target.no_such_bucket(e));
                        }
                        return Err(corrupt(
                            &target,
                            format!(
                                "no {name} here; give the export's directory, \
                                 s3://bucket/prefix/AWSDynamoDB/<export-id>"
                            ),
                        ));
                    }
                    Err(e) => return Err(target.error(&format!("reading {name}"), e)),
                };
                got.bytes()
                    .await
                    .map_err(|e| target.error(&format!("reading {name}"), e))
            }
        };
        let summary: ExportSummary = serde_json::from_slice(&read("manifest-summary.json").await?)
            .map_err(|e| corrupt(&target, format!("manifest-summary.json: {e}")))?;
        match summary.output_format.as_deref() {
            None | Some("DYNAMODB_JSON") | Some("ION") => {}
            Some(other) => {
                return Err(corrupt(
                    &target,
                    format!(
                        "output format {other} is not supported; export as DYNAMODB_JSON or ION"
                    ),
                ));
            }
        }
        let listing = read("manifest-files.json").await?;
        let mut files = Vec::new();
        for (i, line) in listing.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            files.push(serde_json::from_slice(line).map_err(|e| {
                corrupt(&target, format!("manifest-files.json line {}: {e}", i + 1))
            })?);
        }
        let folder = summary.folder_key().ok_or_else(|| {
            corrupt(
                &target,
                "manifest-summary.json has neither manifestFilesS3Key nor exportArn, so its data \
                 files cannot be placed",
            )
        })?;
        let paths = files
            .iter()
            .map(|f: &ExportDataFile| {
                let key = summary.bucket_key(&f.data_file_s3_key, &folder);
                locate(&target.root, &folder, &key).ok_or_else(|| {
                    Error::invalid(format!(
                        "data file {} of the export at {} lies outside what can be read from \
                         there; give the export's folder inside its bucket or inside a copy of \
                         the whole prefix (aws s3 sync s3://bucket/prefix ./raw, then \
                         ./raw/AWSDynamoDB/<export-id>)",
                        f.data_file_s3_key,
                        target.url()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Export {
            target,
            summary,
            files,
            paths,
        })
    }

    /// Where data file `index` is, for messages: a URL or a local path.
    fn location(&self, index: usize) -> String {
        let path = self.paths[index].as_ref();
        let root = self.target.root.as_ref();
        match self.target.url().strip_suffix(root) {
            Some(base) if !root.is_empty() => format!("{}/{path}", base.trim_end_matches('/')),
            _ => path.to_owned(),
        }
    }

    /// Items the manifest says the export holds.
    pub fn item_count(&self) -> u64 {
        self.files.iter().map(|f| f.item_count).sum()
    }

    /// Data file `index`, opened for reading on a blocking thread (its bytes hashed as they
    /// are read).
    fn open_file(&self, index: usize, handle: &Handle) -> Result<HashingReader> {
        let name = self.files[index].data_file_s3_key.as_str();
        let got = handle
            .block_on(self.target.store.get(&self.paths[index]))
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    let shared = if self.summary.is_incremental() {
                        "; an incremental export keeps its data files in the prefix's shared \
                         AWSDynamoDB/data/ folder, next to the export's own folder: copy the \
                         whole prefix, not only the export's folder"
                    } else {
                        ""
                    };
                    corrupt(
                        &self.target,
                        format!(
                            "{name} is listed in manifest-files.json but missing (looked for \
                             {}){shared}",
                            self.location(index)
                        ),
                    )
                }
                e => self.target.error(&format!("reading {name}"), e),
            })?;
        HashingReader::new(got, handle)
            .map_err(|e| self.target.error(&format!("reading {name}"), e))
    }

    /// A data file whose gzip stream breaks off or is damaged.
    fn undecompressable(&self, name: &str, e: std::io::Error) -> Error {
        corrupt(
            &self.target,
            format!("{name}: cannot be decompressed ({e})"),
        )
    }

    /// The first item (or change-log row) of the export, reading only as far as it (on a
    /// blocking thread): what checks of the user's options look at before any work.
    pub(crate) fn first_item(&self, handle: &Handle) -> Result<Option<Item>> {
        let Some(index) = self.files.iter().position(|f| f.item_count > 0) else {
            return Ok(None);
        };
        let name = self.files[index].data_file_s3_key.as_str();
        let mut hashing = self.open_file(index, handle)?;
        let mut lines = Lines::new(flate2::read::MultiGzDecoder::new(&mut hashing));
        loop {
            let line = lines.next().map_err(|e| self.undecompressable(name, e))?;
            let Some(line) = line else {
                return Ok(None);
            };
            if line.trim_ascii().is_empty() {
                continue;
            }
            let parsed = std::str::from_utf8(line)
                .map_err(|e| Error::invalid(format!("not UTF-8 text ({e})")))
                .and_then(|line| parse_any_line(line, self.summary.line_format()));
            return parsed
                .map(Some)
                .map_err(|e| corrupt(&self.target, format!("{name} line 1: {e}")));
        }
    }

    /// Stream data file `index` to `tx` (on a blocking thread): check its MD5 and item count,
    /// send its items in batches, leaving out the first `skip` (already converted by an earlier
    /// run; the whole file is still read for the checks). The last batch of the file leaves it
    /// done; the others say how many items were read so far. Returns early, sending
    /// nothing more, once `stop` is set (Ctrl-C, or another reader failed).
    pub(crate) fn read_file(
        &self,
        index: usize,
        skip: u64,
        handle: &Handle,
        tx: &PageSink,
        stop: &AtomicBool,
    ) -> Result<()> {
        let file = &self.files[index];
        let name = file.data_file_s3_key.as_str();
        let mut hashing = self.open_file(index, handle)?;
        let mut items = Rows::spare().unwrap_or_default();
        let mut count = 0u64;
        let format = self.summary.line_format();
        let mut lines = Lines::new(flate2::read::MultiGzDecoder::new(&mut hashing));
        loop {
            let line = lines.next().map_err(|e| self.undecompressable(name, e))?;
            let Some(line) = line else {
                break;
            };
            if line.trim_ascii().is_empty() {
                continue;
            }
            count += 1;
            if count <= skip {
                continue;
            }
            parse_line(line, format, &mut items)
                .map_err(|e| corrupt(&self.target, format!("{name} line {count}: {e}")))?;
            if items.len() == BATCH_ITEMS || items.data_len() >= BATCH_BYTES {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let next = Rows::spare().unwrap_or_else(|| Rows::with_capacity_of(&items));
                send(
                    tx,
                    index,
                    std::mem::replace(&mut items, next),
                    Position::Lines { lines: count },
                )?;
            }
        }
        drop(lines);
        if let Some(e) = hashing.error.take() {
            return Err(self.target.error(&format!("reading {name}"), e));
        }
        let md5 = base64::engine::general_purpose::STANDARD.encode(hashing.md5.finalize());
        if md5 != file.md5_checksum {
            return Err(corrupt(
                &self.target,
                format!(
                    "{name}: MD5 {md5} does not match the manifest's {}; the file is damaged \
                     or incomplete",
                    file.md5_checksum
                ),
            ));
        }
        if count != file.item_count {
            return Err(corrupt(
                &self.target,
                format!(
                    "{name}: {count} items, the manifest says {}",
                    file.item_count
                ),
            ));
        }
        send(tx, index, items, Position::Done)
    }
}

fn send(tx: &PageSink, index: usize, items: Rows, after: Position) -> Result<()> {
    Ok(tx.blocking_send(Page::from_rows(index as u32, items, after))?)
}

/// An RFC 3339 time of a summary.
fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The lines of a data file, each with its `\n` (the last one may have none). A line that
/// lies whole in the buffer is read there, in place; only one that crosses the buffer's end is
/// copied out.
struct Lines<R> {
    reader: BufReader<R>,
    /// How much of the buffer the line last returned took: consumed at the next call.
    taken: usize,
    /// The line last returned, when it crossed the buffer's end.
    spill: Vec<u8>,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            reader: BufReader::with_capacity(1 << 16, inner),
            taken: 0,
            spill: Vec::new(),
        }
    }

    /// The next line; `None` at the end.
    fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.reader.consume(std::mem::take(&mut self.taken));
        let buffered = self.reader.fill_buf()?;
        if buffered.is_empty() {
            return Ok(None);
        }
        if let Some(end) = memchr::memchr(b'\n', buffered) {
            self.taken = end + 1;
            return Ok(Some(&self.reader.buffer()[..=end]));
        }
        self.spill.clear();
        self.reader.read_until(b'\n', &mut self.spill)?;
        Ok(Some(&self.spill))
    }
}

/// Reads an object synchronously (readers run on blocking threads), hashing every byte.
struct HashingReader {
    bytes: ObjectBytes,
    md5: Md5,
    error: Option<object_store::Error>,
}

/// Where a [`HashingReader`]'s bytes come from.
enum ObjectBytes {
    /// A file on local disk, read in place: its stream would come in 8 KiB chunks, each a
    /// round trip through the runtime's blocking pool, and that cost a quarter of a local
    /// conversion's wall time.
    File {
        file: std::io::Take<std::fs::File>,
        path: std::path::PathBuf,
    },
    /// A remote object's body, polled on the runtime chunk by chunk.
    Stream {
        stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
        handle: Handle,
        chunk: bytes::Bytes,
    },
}

impl HashingReader {
    fn new(got: object_store::GetResult, handle: &Handle) -> object_store::Result<Self> {
        let bytes = match got.payload {
            object_store::GetResultPayload::File(mut file, path) => {
                use std::io::Seek;
                let range = got.range;
                file.seek(std::io::SeekFrom::Start(range.start))
                    .map_err(|e| local_error(&path, e))?;
                ObjectBytes::File {
                    file: file.take(range.end - range.start),
                    path,
                }
            }
            object_store::GetResultPayload::Stream(stream) => ObjectBytes::Stream {
                stream,
                handle: handle.clone(),
                chunk: bytes::Bytes::new(),
            },
        };
        Ok(HashingReader {
            bytes,
            md5: Md5::new(),
            error: None,
        })
    }

    fn failed(&mut self, e: object_store::Error) -> std::io::Error {
        let message = e.to_string();
        self.error = Some(e);
        std::io::Error::other(message)
    }
}

/// A local read's error, as object_store reports its own.
fn local_error(path: &std::path::Path, e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("reading {}: {e}", path.display()).into(),
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.bytes {
            ObjectBytes::File { file, path } => match file.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    let e = local_error(path, e);
                    return Err(self.failed(e));
                }
            },
            ObjectBytes::Stream {
                stream,
                handle,
                chunk,
            } => {
                while chunk.is_empty() {
                    match handle.block_on(stream.next()) {
                        None => return Ok(0),
                        Some(Ok(next)) => *chunk = next,
                        Some(Err(e)) => return Err(self.failed(e)),
                    }
                }
                let n = buf.len().min(chunk.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                *chunk = chunk.slice(n..);
                n
            }
        };
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::TimeDelta;

    /// A reader that hands out at most `step` bytes per read, as a decoder may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        /// Lines come out as `split_inclusive` cuts them, whether they lie in the buffer or
        /// cross its end (lines up to twice its size, reads of any size, a last line with or
        /// without its newline).
        #[test]
        fn lines_are_cut_at_every_newline(
            lengths in proptest::collection::vec(0usize..140_000, 0..12),
            step in 1usize..100_000,
            newline_at_end: bool,
        ) {
            let mut data = Vec::new();
            for (i, len) in lengths.iter().enumerate() {
                data.extend((0..*len).map(|j| b'a' + ((i + j) % 26) as u8));
                data.push(b'\n');
            }
            if !newline_at_end {
                data.pop();
            }
            let mut lines = Lines::new(Trickle { data: &data, step });
            let mut got = Vec::new();
            while let Some(line) = lines.next().unwrap() {
                got.push(line.to_vec());
            }
            let expected: Vec<Vec<u8>> = data.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    /// A local file (read in place) and a remote stream give the same bytes and MD5, of the
    /// whole object and of a range.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_reader_reads_files_in_place_and_streams_alike() {
        use object_store::{GetOptions, GetRange, ObjectStore};
        let body: Vec<u8> = (0..200_000).map(|_| fastrand::u8(..)).collect();
        let dir = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let remote = object_store::memory::InMemory::new();
        let path = Path::from("data/part.json.gz");
        for store in [&local as &dyn ObjectStore, &remote] {
            store.put(&path, body.clone().into()).await.unwrap();
        }
        for range in [None, Some(10_000..150_001u64)] {
            let expected = match &range {
                Some(r) => &body[r.start as usize..r.end as usize],
                None => &body[..],
            };
            for (store, in_place) in [(&local as &dyn ObjectStore, true), (&remote, false)] {
                let options = GetOptions {
                    range: range.clone().map(GetRange::Bounded),
                    ..GetOptions::default()
                };
                let got = store.get_opts(&path, options).await.unwrap();
                let handle = Handle::current();
                let (read, md5, was_file) = tokio::task::spawn_blocking(move || {
                    let mut reader = HashingReader::new(got, &handle).unwrap();
                    let was_file = matches!(reader.bytes, ObjectBytes::File { .. });
                    let mut read = Vec::new();
                    reader.read_to_end(&mut read).unwrap();
                    (read, reader.md5.finalize().to_vec(), was_file)
                })
                .await
                .unwrap();
                assert_eq!(was_file, in_place);
                assert!(read == expected, "{range:?} in place: {in_place}");
                assert_eq!(md5, Md5::digest(expected).to_vec());
            }
        }
    }

    #[test]
    fn long_gaps_split_into_consecutive_windows_dynamodb_accepts() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (span, count) in [
            (TimeDelta::minutes(15), 1),
            (TimeDelta::hours(24), 1),
            (TimeDelta::hours(24) + TimeDelta::seconds(1), 2),
            (TimeDelta::hours(48) + TimeDelta::minutes(3), 3),
            (TimeDelta::days(30) + TimeDelta::milliseconds(1500), 31),
        ] {
            let windows = split_window(t0, t0 + span, true).unwrap();
            assert_eq!(windows.len(), count, "{span}");
            assert_eq!(windows[0].from, t0);
            assert_eq!(windows.last().unwrap().to, t0 + span);
            for pair in windows.windows(2) {
                assert_eq!(pair[0].to, pair[1].from, "consecutive");
            }
            for w in &windows {
                assert!(
                    w.to - w.from >= MIN_WINDOW && w.to - w.from <= MAX_WINDOW,
                    "{w:?}"
                );
                assert!(w.old_images);
            }
        }
        let err = split_window(t0, t0 + TimeDelta::minutes(14), false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("nothing to export before"),
            "{err}"
        );
    }

    #[test]
    fn incremental_windows_follow_dynamodb_limits() {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let window = |from: &str, to: &str| IncrementalWindow {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            old_images: true,
        };
        assert!(
            window("2026-11-23T12:00:00Z", "2026-11-24T12:00:00Z")
                .validate(now)
                .is_ok()
        );
        assert!(
            window("2026-11-24T11:00:00Z", "2026-11-24T11:15:00Z")
                .validate(now)
                .is_ok()
        );
        let err = |w: IncrementalWindow| w.validate(now).unwrap_err().to_string();
        assert!(
            err(window("2026-11-24T11:00:00Z", "2026-11-24T11:14:59Z"))
                .contains("at least 15 minutes")
        );
        assert!(
            err(window("2026-11-22T11:00:00Z", "2026-11-24T11:00:00Z"))
                .contains("at most 24 hours")
        );
        assert!(
            err(window("2026-11-24T11:50:00Z", "2026-11-24T12:10:00Z")).contains("in the future")
        );
    }

    #[test]
    fn data_files_are_placed_from_their_keys() {
        let at = |root: &str, folder: &str, key: &str| {
            locate(&Path::from(root), folder, key).map(|p| p.to_string())
        };
        // In the bucket itself: the key is the path.
        let full = "raw/AWSDynamoDB/0170-ab/data/x1.json.gz";
        let shared = "raw/AWSDynamoDB/data/x2.json.gz";
        let folder = "raw/AWSDynamoDB/0170-ab";
        assert_eq!(at(folder, folder, full).as_deref(), Some(full));
        assert_eq!(at(folder, folder, shared).as_deref(), Some(shared));
        // Prefixes of several levels, and none.
        let deep = "a/b/c/AWSDynamoDB/0170-ab";
        assert_eq!(
            at(deep, deep, "a/b/c/AWSDynamoDB/data/x.json.gz").as_deref(),
            Some("a/b/c/AWSDynamoDB/data/x.json.gz")
        );
        assert_eq!(
            at(
                "AWSDynamoDB/0170-ab",
                "AWSDynamoDB/0170-ab",
                "AWSDynamoDB/data/x.json.gz"
            )
            .as_deref(),
            Some("AWSDynamoDB/data/x.json.gz")
        );
        // A local copy of the prefix (`aws s3 sync s3://bucket/raw ./copy`).
        let copy = "home/me/copy/AWSDynamoDB/0170-ab";
        assert_eq!(
            at(copy, folder, shared).as_deref(),
            Some("home/me/copy/AWSDynamoDB/data/x2.json.gz")
        );
        assert_eq!(
            at(copy, folder, full).as_deref(),
            Some("home/me/copy/AWSDynamoDB/0170-ab/data/x1.json.gz")
        );
        // Up to the store's root, and nothing above it.
        assert_eq!(
            at("0170-ab", folder, shared).as_deref(),
            Some("data/x2.json.gz")
        );
        assert_eq!(
            at("0170-ab", folder, "other/AWSDynamoDB/data/x.json.gz"),
            None
        );
        // The folder from the summary: manifestFilesS3Key, else s3Prefix and the ARN.
        let mut summary: ExportSummary = serde_json::from_str(
            r#"{"manifestFilesS3Key":"p/q/AWSDynamoDB/01-ab/manifest-files.json"}"#,
        )
        .unwrap();
        assert_eq!(
            summary.folder_key().as_deref(),
            Some("p/q/AWSDynamoDB/01-ab")
        );
        summary.manifest_files_s3_key = None;
        assert_eq!(summary.folder_key(), None);
        summary.export_arn = Some("arn:aws:dynamodb:eu-west-1:1:table/t/export/01-ab".into());
        assert_eq!(summary.folder_key().as_deref(), Some("AWSDynamoDB/01-ab"));
        summary.s3_prefix = Some("p/q/".into());
        assert_eq!(
            summary.folder_key().as_deref(),
            Some("p/q/AWSDynamoDB/01-ab")
        );
        // Data keys from the bucket root, or relative to the prefix.
        let folder = "p/q/AWSDynamoDB/01-ab";
        for key in [
            "p/q/AWSDynamoDB/data/x.json.gz",
            "AWSDynamoDB/data/x.json.gz",
        ] {
            assert_eq!(
                summary.bucket_key(key, folder),
                "p/q/AWSDynamoDB/data/x.json.gz"
            );
        }
        summary.s3_prefix = None;
        assert_eq!(
            summary.bucket_key("AWSDynamoDB/data/x.json.gz", "AWSDynamoDB/01-ab"),
            "AWSDynamoDB/data/x.json.gz"
        );
    }

    /// [`parse_line`] of one line, as an item.
    fn parse_line(line: &str, summary: &ExportSummary) -> Result<Item> {
        let mut rows = Rows::new();
        super::parse_line(line.as_bytes(), summary.line_format(), &mut rows)?;
        assert_eq!(rows.len(), 1);
        Ok(rows.to_item(0))
    }

    fn full_summary() -> ExportSummary {
        ExportSummary {
            export_arn: None,
            table_arn: None,
            export_time: None,
            export_type: None,
            output_format: None,
            item_count: None,
            manifest_files_s3_key: None,
            s3_bucket: None,
            s3_prefix: None,
            export_view_type: None,
            export_from_time: None,
            export_to_time: None,
        }
    }

    /// `item` in DynamoDB JSON, as an export line or a Scan response body.
    fn dynamodb_json(item: &Item) -> String {
        let fields: Vec<String> = item
            .iter()
            .map(|(k, v)| {
                let value = crate::convert::json::value_to_json(v).unwrap();
                format!("{}:{value}", serde_json::to_string(k).unwrap())
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            ..Default::default()
        })]

        /// The export-line, Ion and Scan-body parsers return errors, never panic, on any text.
        #[test]
        fn parsers_never_panic_on_random_text(text in "\\PC{0,120}|[{}\\[\\]\":,SNBLMbool0-9 ]{0,120}") {
            let _ = parse_line(&text, &full_summary());
            let _ = super::super::ion::line_to_json(&text);
            let _ = super::super::raw::parse_page(text.as_bytes());
        }

        /// A valid line parses back to its item; every shorter prefix of it is an error.
        #[test]
        fn truncated_lines_are_errors(
            item in crate::convert::arbitrary::item(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let line = format!("{{\"Item\":{}}}", dynamodb_json(&item));
            let body = format!("{{\"Items\":[{}],\"Count\":1}}", dynamodb_json(&item));
            let parsed = parse_line(&line, &full_summary()).unwrap();
            proptest::prop_assert_eq!(
                crate::convert::arbitrary::normalized(&parsed),
                crate::convert::arbitrary::normalized(&item)
            );
            let scanned = super::super::raw::parse_page(body.as_bytes()).unwrap().1.to_items();
            proptest::prop_assert_eq!(&scanned, &vec![parsed]);
            let mut at = cut.index(line.len());
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            proptest::prop_assert!(parse_line(&line[..at], &full_summary()).is_err());
            let at = cut.index(body.len());
            proptest::prop_assert!(super::super::raw::parse_page(&body.as_bytes()[..at]).is_err());
        }
    }

    #[test]
    fn parses_item_lines() {
        let full = full_summary();
        let item = parse_line(r#"{"Item":{"pk":{"S":"a"},"n":{"N":"1.5"}}}"#, &full).unwrap();
        assert_eq!(item["n"], AttributeValue::N("1.5".into()));
        assert!(parse_line(r#"{"Keys":{}}"#, &full).is_err(), "no metadata");
        assert!(parse_line("{", &full).is_err());
        let unknown = parse_line(r#"{"Item":{"pk":{"S":"a"},"x":{"Q":"1"}}}"#, &full)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("attribute 'x'") && unknown.contains("'Q'"),
            "names the attribute and the type: {unknown}"
        );
        assert!(
            parse_line(r#"{"Item":{"n":{"N":1}}}"#, &full).is_err(),
            "N must be text"
        );
        assert!(parse_line(r#"{"Item":[1]}"#, &full).is_err());

        // The fast path for full-export lines gives exactly what the general path gives,
        // items and errors, on every type and on malformed lines.
        for line in [
            r#"{"Item":{"s":{"S":"a\"b\u00e9\ud83d\ude00"},"n":{"N":"-1.5E+3"},"b":{"B":"AP8A"}}}"#,
            r#"{"Item":{"t":{"BOOL":true},"f":{"BOOL":false},"z":{"NULL":true},"zf":{"NULL":false}}}"#,
            r#"{"Item":{"ss":{"SS":["x",""]},"ns":{"NS":["1","2.50"]},"bs":{"BS":["","AQ=="]}}}"#,
            r#"{"Item":{"l":{"L":[{"NULL":true},{"S":"s"},{"L":[]}]},"m":{"M":{"k.1 x":{"M":{}}}}}}"#,
            r#"{"Item":{"dup":{"S":"first"},"dup":{"S":"second"}}}"#,
            r#"{"Item":{}}"#,
            r#"{"Item":{"pk":{"S":"a"}},"Other":1}"#,
            r#"{"Item":null,"Keys":{"pk":{"S":"a"}},"Metadata":{"WriteTimestampMicros":1}}"#,
            r#"{"Item":{"x":{"Q":"1"}}}"#,
            r#"{"Item":{"n":{"N":1}}}"#,
            r#"{"Item":{"b":{"B":"!"}}}"#,
            r#"{"Item":{"two":{"S":"a","N":"1"}}}"#,
            r#"{"Item":{"e":{}}}"#,
            r#"{"Item":{"ss":{"SS":[1]}}}"#,
            r#"{"Item":{"z":{"NULL":"yes"}}}"#,
            r#"{"Item":{"m":{"M":[]}}}"#,
            r#"{"Item":[1]}"#,
            r#"{"Item":{"pk":{"S":"a"}}"#,
            r#"{"Item":{"pk":{"S":"a"}}} trailing"#,
        ] {
            let fast = parse_line(line, &full).map_err(|e| e.to_string());
            let general = parse_any_line(line, full.line_format()).map_err(|e| e.to_string());
            assert_eq!(fast, general, "{line}");
        }

        let incremental = ExportSummary {
            export_type: Some("INCREMENTAL_EXPORT".into()),
            export_view_type: Some("NEW_AND_OLD_IMAGES".into()),
            ..full
        };
        let row = |line: &str| parse_line(line, &incremental).unwrap();
        let insert = row(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"1700000000000001"}},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"v":{"N":"2"}}}"#,
        );
        assert_eq!(insert["_op"], AttributeValue::S("insert".into()));
        assert_eq!(
            insert["_write_time"],
            AttributeValue::N("1700000000000001".into())
        );
        assert_eq!(insert["v"], AttributeValue::N("2".into()));
        let update = row(
            r#"{"Metadata":{"WriteTimestampMicros":1700000000000002},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"v":{"N":"3"}},"OldImage":{"pk":{"S":"a"},"v":{"N":"2"}}}"#,
        );
        assert_eq!(update["_op"], AttributeValue::S("update".into()));
        assert_eq!(
            update["_write_time"],
            AttributeValue::N("1700000000000002".into())
        );
        let AttributeValue::M(old) = &update["_old"] else {
            panic!()
        };
        assert_eq!(old["v"], AttributeValue::N("2".into()));
        let delete = row(
            r#"{"Metadata":{"WriteTimestampMicros":{"N":"3"}},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}"#,
        );
        assert_eq!(delete["_op"], AttributeValue::S("delete".into()));
        assert_eq!(delete["pk"], AttributeValue::S("a".into()));
        assert!(
            parse_line(
                r#"{"Metadata":{"WriteTimestampMicros":1},"Keys":{"pk":{"S":"a"}},"NewImage":{"_op":{"S":"x"}}}"#,
                &incremental
            )
            .is_err(),
            "a clash with the change-log columns is an error"
        );
    }
}
