//! Rewriting live files of a Delta table: their rows copied into new files of the target
//! size (in the table's column order), without the rows whose keys a change set changes, then
//! the change set's new images. A MERGE rewrites the files holding changed keys; a compaction
//! is the same rewrite with no changes.

use std::collections::HashSet;

use tokio::runtime::Handle;

use super::table::{MergeStats, TableFile};
use crate::changes::{ChangeSet, key_text};
use crate::convert::{ATTRIBUTE_NAME_KEY, Columns, Item};
use crate::error::{Error, Result};
use crate::sink::Target;
use crate::sink::physical::PhysicalNames;
use crate::sink::reader::FileItems;
use crate::sink::writer::RollingWriter;
use delta_kernel::schema::StructType;

/// Rows per batch written from the change set.
const BATCH_ROWS: usize = 8192;

/// `columns` in the order of the table's columns `table` (matched by attribute name), the
/// columns the table lacks after them in their own order: a MERGE never reorders a table, whatever
/// order the recorded shape has (older ddbsnap versions recorded it sorted by name).
pub(super) fn in_table_order(mut columns: Columns, table: &StructType) -> Columns {
    let position: std::collections::HashMap<&str, usize> = table
        .fields()
        .enumerate()
        .map(|(i, field)| {
            let name = match field.metadata().get(ATTRIBUTE_NAME_KEY) {
                Some(delta_kernel::schema::MetadataValue::String(name)) => name.as_str(),
                _ => field.name().as_str(),
            };
            (name, i)
        })
        .collect();
    columns
        .sort_by_cached_key(|name, _| position.get(name.as_str()).copied().unwrap_or(usize::MAX));
    columns
}

/// The table folder and file name of a live file's log path (relative, percent-encoded).
pub(super) fn open_at(table: &Target, file: &TableFile) -> Result<(Target, String)> {
    if file.path.contains("://") {
        return Err(Error::Destination {
            url: table.url().to_owned(),
            message: format!(
                "the table references a file outside its folder ({}), as a shallow clone \
                 does; ddbsnap merges only into tables whose files are under the table",
                file.path
            ),
            source: None,
        });
    }
    let path = percent_encoding::percent_decode_str(&file.path)
        .decode_utf8()
        .map_err(|e| Error::Internal(format!("file path {} in the log: {e}", file.path)))?;
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let name = parts.pop().unwrap_or_default().to_owned();
    let folder = parts.into_iter().fold(table.clone(), |t, p| t.child(p));
    Ok((folder, name))
}

/// Writing a MERGE's new files (and a compaction's: a MERGE of no changes).
pub(super) struct Rewrite<'a> {
    pub(super) table: &'a Target,
    pub(super) keys: &'a [String],
    pub(super) columns: &'a Columns,
    /// The table's physical column names, when it maps columns.
    pub(super) physical: Option<&'a PhysicalNames>,
    pub(super) handle: &'a Handle,
}

impl Rewrite<'_> {
    /// Copy the rows of `touched` files whose keys did not change, then write the change set's
    /// new images; returns the files written and the row counts.
    pub(super) fn run(
        &self,
        mut writer: RollingWriter,
        touched: &[TableFile],
        changes: ChangeSet,
    ) -> Result<(Vec<crate::sink::DataFile>, MergeStats)> {
        let mut stats = MergeStats::default();
        // Changed keys found in the table: updated or deleted there; the others are inserts.
        let mut found: HashSet<String> = HashSet::new();
        for file in touched {
            let (folder, name) = open_at(self.table, file)?;
            let mut rows = self.handle.block_on(FileItems::open_with(
                &folder,
                &name,
                None,
                Some(self.columns),
                self.physical,
            ))?;
            while let Some(batch) = self.handle.block_on(rows.next_batch())? {
                let mut kept: Vec<Item> = Vec::with_capacity(batch.len());
                for row in batch {
                    let key = key_text(&row, self.keys)?;
                    match changes.deletes(&key) {
                        None => kept.push(row),
                        Some(deleted) => {
                            if found.insert(key) {
                                if deleted {
                                    stats.rows_deleted += 1;
                                } else {
                                    stats.rows_updated += 1;
                                }
                            }
                        }
                    }
                }
                stats.rows_copied += kept.len() as u64;
                self.write(&mut writer, &kept)?;
            }
        }
        let images = changes.into_images();
        stats.rows_inserted = images.iter().filter(|(k, _)| !found.contains(k)).count() as u64;
        let mut images = images.into_iter().map(|(_, item)| item);
        loop {
            let batch: Vec<Item> = images.by_ref().take(BATCH_ROWS).collect();
            if batch.is_empty() {
                break;
            }
            self.write(&mut writer, &batch)?;
        }
        Ok((writer.finish()?, stats))
    }

    fn write(&self, writer: &mut RollingWriter, rows: &[Item]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        writer.write_items(self.columns, rows)?;
        if writer.roll_due(None) {
            writer.close_current()?;
        }
        Ok(())
    }
}
