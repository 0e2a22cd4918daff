//! Per-file column statistics, for table formats whose log keeps them (Delta's `stats` of an
//! add action): the row count, and the null count, minimum and maximum of the first
//! [`STATS_COLUMNS`] leaf columns in schema order (key attributes come first), collected while
//! the file is written by the Delta kernel's own statistics collector (strings truncated to a
//! 32-character prefix as the protocol says), and kept as the JSON text of the add action.
//! Readers use them to skip files: a lookup by key reads only the files whose key range holds
//! it.
//!
//! Memory: one single-row summary per written batch of the open file.

use arrow_array::{RecordBatch, StructArray};
use arrow_schema::Schema;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::expressions::ColumnName;
use delta_kernel::schema::{DataType, StructType};
use delta_kernel_default_engine::stats::FileStatsAccumulator;

use crate::error::{Error, Result};

/// Leaf columns with statistics: Delta's default `delta.dataSkippingNumIndexedCols`.
pub(crate) const STATS_COLUMNS: usize = 32;

/// The statistics of one file being written.
pub(crate) struct FileStats {
    collector: FileStatsAccumulator,
}

impl FileStats {
    /// Statistics of a file with the Arrow schema `schema`.
    pub(crate) fn new(schema: &Schema) -> Result<Self> {
        let physical = StructType::try_from_arrow(schema)
            .map_err(|e| Error::Internal(format!("a data file's schema in Delta terms: {e}")))?;
        let mut columns = Vec::new();
        leaves(&physical, &[], &mut columns);
        columns.truncate(STATS_COLUMNS);
        Ok(FileStats {
            collector: FileStatsAccumulator::new(&columns, &physical),
        })
    }

    /// Count the rows of `batch`, written to the file.
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.collector
            .merge(batch)
            .map_err(|e| Error::Internal(format!("collecting file statistics: {e}")))
    }

    /// The file's statistics as the JSON of an add action's `stats`; `None` for a file no
    /// batch was written to.
    pub(crate) fn finish(self) -> Result<Option<String>> {
        let fail =
            |e: &dyn std::fmt::Display| Error::Internal(format!("collecting file statistics: {e}"));
        let Some(stats) = self.collector.finish().map_err(|e| fail(&e))? else {
            return Ok(None);
        };
        json(&stats).map(Some).map_err(|e| fail(&e))
    }
}

/// The single row of `stats` as one JSON object (decimals as exact JSON numbers).
fn json(stats: &StructArray) -> std::result::Result<String, arrow_schema::ArrowError> {
    let batch = RecordBatch::from(stats.clone());
    let mut out = arrow_json::LineDelimitedWriter::new(Vec::new());
    out.write(&batch)?;
    out.finish()?;
    let text = String::from_utf8(out.into_inner())
        .map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))?;
    Ok(text.trim_end().to_owned())
}

/// The leaf columns of `schema` (a struct's fields in order, depth first), under `prefix`.
fn leaves(schema: &StructType, prefix: &[String], out: &mut Vec<ColumnName>) {
    for field in schema.fields() {
        let mut path = prefix.to_vec();
        path.push(field.name().clone());
        match field.data_type() {
            DataType::Struct(inner) => leaves(inner, &path, out),
            _ => out.push(ColumnName::new(path)),
        }
    }
}

/// An Arrow schema's statistics, for tests.
#[cfg(test)]
fn of(schema: std::sync::Arc<Schema>, batches: &[RecordBatch]) -> Option<serde_json::Value> {
    let mut stats = FileStats::new(&schema).unwrap();
    for b in batches {
        stats.add(b).unwrap();
    }
    stats
        .finish()
        .unwrap()
        .map(|t| serde_json::from_str(&t).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Decimal128Array, StringArray};
    use arrow_schema::{DataType as Arrow, Field, Fields};

    #[test]
    fn min_max_and_null_counts_are_exact_across_batches_and_nested_fields() {
        let inner = Fields::from(vec![Field::new("rank", Arrow::Decimal128(38, 2), true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("pk", Arrow::Utf8, false),
            Field::new("meta", Arrow::Struct(inner.clone()), true),
        ]));
        let batch = |keys: &[&str], ranks: &[Option<i128>]| {
            let ranks: ArrayRef = Arc::new(
                Decimal128Array::from(ranks.to_vec())
                    .with_precision_and_scale(38, 2)
                    .unwrap(),
            );
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(keys.to_vec())),
                    Arc::new(StructArray::new(inner.clone(), vec![ranks], None)),
                ],
            )
            .unwrap()
        };
        let got = of(
            Arc::clone(&schema),
            &[
                batch(
                    &["m", "c"],
                    &[Some(12345678901234567890123456789012345678), None],
                ),
                batch(&["x"], &[Some(-5)]),
            ],
        )
        .unwrap();
        assert_eq!(got["numRecords"], 3);
        assert_eq!(got["minValues"]["pk"], "c");
        assert_eq!(got["maxValues"]["pk"], "x");
        assert_eq!(got["nullCount"]["meta"]["rank"], 1);
        // Decimals as exact JSON numbers (every digit).
        let text = FileStats::new(&schema).map(|mut s| {
            s.add(&batch(
                &["a"],
                &[Some(12345678901234567890123456789012345678)],
            ))
            .unwrap();
            s.finish().unwrap().unwrap()
        });
        assert!(
            text.unwrap()
                .contains("123456789012345678901234567890123456.78"),
            "exact decimal"
        );
        assert!(of(schema, &[]).is_none());
    }

    #[test]
    fn only_the_first_32_leaf_columns_have_statistics() {
        let fields: Vec<Field> = (0..40)
            .map(|i| Field::new(format!("c{i:02}"), Arrow::Utf8, true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let columns: Vec<ArrayRef> = (0..40)
            .map(|_| Arc::new(StringArray::from(vec!["v"])) as ArrayRef)
            .collect();
        let got = of(
            Arc::clone(&schema),
            &[RecordBatch::try_new(schema, columns).unwrap()],
        )
        .unwrap();
        let min = got["minValues"].as_object().unwrap();
        assert_eq!(min.len(), 32);
        assert!(min.contains_key("c31") && !min.contains_key("c32"));
    }
}
