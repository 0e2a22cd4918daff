//! Re-encoding a data file: its items read back and written again with a wider schema (files
//! written before a run's schema settled, earlier runs of a folder of pulls).

use super::Target;
use super::reader::FileItems;
use super::writer::RollingWriter;
use crate::convert::Columns;
use crate::error::Result;

/// Write the items of the data file `from` of `source` (written with any narrower schema) to
/// `writer` as `columns`, rolling its files at their target size. Runs on a blocking thread.
pub(crate) fn reencode(
    writer: &mut RollingWriter,
    source: &Target,
    from: &str,
    columns: &Columns,
) -> Result<()> {
    let handle = writer.handle().clone();
    let mut items = handle.block_on(FileItems::open(source, from))?;
    while let Some(batch) = handle.block_on(items.next_batch())? {
        writer.write_items(columns, &batch)?;
        if writer.roll_due(None) {
            writer.close_current()?;
        }
    }
    Ok(())
}
