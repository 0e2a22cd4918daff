//! Reading snapshots back: the manifest, and any data file as DynamoDB items (and writing the
//! manifest, whose commit a reader trusts).
//!
//! Used to re-encode files written before the schema settled, by the tests to check snapshots
//! value by value, and by library users who want items back. Streams one batch (1,024 rows) at
//! a time; memory is one row group's column chunks plus one batch of items.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::physical::{PhysicalNames, retype};
use super::writer::COLUMNS_METADATA_KEY;
use super::{MANIFEST_FILE, Target};
use crate::convert::{Columns, Item, decode_batch};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// An `AsyncFileReader` over one object of an `ObjectStore` (range and suffix requests).
#[derive(Debug, Clone)]
pub(crate) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

fn parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store
            .get_range(&self.path, range)
            .map_err(parquet_err)
            .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let resp = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(parquet_err)?;
            resp.bytes().await.map_err(parquet_err)
        }
        .boxed()
    }
}

/// Write `manifest` as the `_manifest.json` of `target`: the commit of a snapshot folder.
pub(crate) async fn write_manifest(target: &Target, manifest: &Manifest) -> Result<()> {
    let body = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
    target
        .store
        .put(&target.path(MANIFEST_FILE), body.into())
        .await
        .map_err(|e| target.error("writing _manifest.json", e))?;
    Ok(())
}

/// Read `_manifest.json` of a committed snapshot.
pub async fn read_manifest(target: &Target) -> Result<Manifest> {
    let bytes = target
        .store
        .get(&target.path(MANIFEST_FILE))
        .await
        .map_err(|e| target.error("reading _manifest.json", e))?
        .bytes()
        .await
        .map_err(|e| target.error("reading _manifest.json", e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Destination {
        url: target.url.clone(),
        message: format!("_manifest.json is not a ddbsnap manifest: {e}"),
        source: Some(Box::new(e)),
    })
}

/// A data file opened for reading: its schema (from its own `ddbsnap.columns` metadata) and a
/// stream of record batches.
pub struct FileItems {
    columns: Columns,
    /// The column schema of its batches, when the file stores them under other (physical)
    /// names.
    renamed: Option<arrow_schema::SchemaRef>,
    name: String,
    stream: parquet::arrow::async_reader::ParquetRecordBatchStream<ObjectReader>,
}

impl std::fmt::Debug for FileItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileItems")
            .field("name", &self.name)
            .finish()
    }
}

impl FileItems {
    /// Open the data file `name` under the snapshot root.
    pub async fn open(target: &Target, name: &str) -> Result<Self> {
        Self::open_with(target, name, None, None, None).await
    }

    /// Open the data file `name` under `target`, reading only the top-level attributes in
    /// `only` (all when `None`). A file without ddbsnap's column metadata (one another engine
    /// rewrote, as Delta's OPTIMIZE does) is decoded with `fallback`, the table's columns, when
    /// given. Columns stored under physical names are read under their column names again:
    /// by `physical`, the table's names, else by each field's own attribute name.
    pub(crate) async fn open_with(
        target: &Target,
        name: &str,
        only: Option<&[String]>,
        fallback: Option<&Columns>,
        physical: Option<&PhysicalNames>,
    ) -> Result<Self> {
        let reader = ObjectReader {
            store: Arc::clone(&target.store),
            path: target.path(name),
        };
        let fail = |e: ParquetError| Error::format(format!("reading {name}"), e);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(fail)?
            .with_batch_size(1024);
        let columns_json = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == COLUMNS_METADATA_KEY))
            .and_then(|k| k.value.clone());
        let columns: Columns = match (columns_json, fallback) {
            (Some(json), _) => serde_json::from_str(&json)
                .map_err(|e| Error::format(format!("{name}: bad {COLUMNS_METADATA_KEY}"), e))?,
            (None, Some(columns)) => columns.clone(),
            (None, None) => {
                return Err(Error::Destination {
                    url: target.url.clone(),
                    message: format!(
                        "{name} has no {COLUMNS_METADATA_KEY} metadata; not a ddbsnap file"
                    ),
                    source: None,
                });
            }
        };
        let file_schema = Arc::clone(builder.schema());
        let mut column_schema = physical
            .unwrap_or(&PhysicalNames::default())
            .column_schema(&file_schema);
        let builder = match only {
            None => builder,
            Some(only) => {
                let names: Vec<&str> = columns.keys().map(String::as_str).collect();
                let wanted: Vec<String> = columns
                    .keys()
                    .zip(crate::convert::column_names(&names))
                    .filter(|(attribute, _)| only.contains(attribute))
                    .map(|(_, column)| column.into_owned())
                    .collect();
                let roots: Vec<usize> = column_schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| wanted.contains(f.name()))
                    .map(|(i, _)| i)
                    .collect();
                column_schema = Arc::new(
                    column_schema
                        .project(&roots)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                );
                let mask = parquet::arrow::ProjectionMask::roots(
                    builder.metadata().file_metadata().schema_descr(),
                    roots,
                );
                builder.with_projection(mask)
            }
        };
        let renamed = (column_schema.fields() != file_schema.fields()).then_some(column_schema);
        Ok(FileItems {
            columns,
            renamed,
            name: name.to_owned(),
            stream: builder.build().map_err(fail)?,
        })
    }

    /// The column types this file was written with.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The next batch of items, `None` at the end of the file.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Item>>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(Error::format(format!("reading {}", self.name), e)),
            Some(Ok(batch)) => {
                let batch = match &self.renamed {
                    Some(schema) => retype(&batch, Arc::clone(schema))?,
                    None => batch,
                };
                Ok(Some(decode_batch(&self.columns, &batch)?))
            }
        }
    }
}
