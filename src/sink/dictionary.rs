//! Which columns of a file get a Parquet dictionary.
//!
//! parquet-rs dictionary-encodes every column until a column chunk's dictionary reaches its
//! page size limit (1 MiB), whatever the values. A column of unique values (a sort key, an
//! amount, a timestamp, a long text) pays for hashing and copying every value into the
//! dictionary, and comes out larger than it would be plain: the dictionary holds every value
//! and the indices come on top. parquet-mr falls back to plain after a column's first page when
//! the dictionary does not pay; this does the same per file: from the file's first rows (the
//! writer's sample, up to 1,000 rows), a column keeps its dictionary when its dictionary plus
//! its indices would be smaller than its plain values. A sample of fewer than [`MIN_SAMPLE`]
//! values keeps parquet's default.
//!
//! The choice changes the encoding only: every reader reads either, value for value.

use std::collections::HashSet;
use std::hash::Hash;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ArrowSchemaConverter;
use parquet::schema::types::ColumnPath;

/// Fewer non-null values than this in a column of the sample tell too little: the column keeps
/// parquet's default (a dictionary).
pub(crate) const MIN_SAMPLE: usize = 64;

/// The columns of `schema` that should be written without a dictionary, judged by `sample`
/// (batches of that schema). Columns not named keep the default.
pub(crate) fn plain_columns(schema: &Schema, sample: &[RecordBatch]) -> Vec<ColumnPath> {
    let Ok(descriptor) = ArrowSchemaConverter::new().convert(schema) else {
        return Vec::new();
    };
    let mut leaves = vec![Vec::new(); descriptor.num_columns()];
    for batch in sample {
        let mut batch_leaves = Vec::with_capacity(descriptor.num_columns());
        for column in batch.columns() {
            collect_leaves(column, &mut batch_leaves);
        }
        if batch_leaves.len() != descriptor.num_columns() {
            // Not a schema this writer builds: leave every column to parquet.
            return Vec::new();
        }
        for (leaf, arrays) in batch_leaves.into_iter().zip(&mut leaves) {
            arrays.push(leaf);
        }
    }
    descriptor
        .columns()
        .iter()
        .zip(leaves)
        .filter(|(_, arrays)| sizes(arrays).is_some_and(|s| !s.dictionary_pays()))
        .map(|(column, _)| column.path().clone())
        .collect()
}

/// The value arrays of `array`, in the order of the Parquet leaf columns.
fn collect_leaves<'a>(array: &'a ArrayRef, out: &mut Vec<&'a ArrayRef>) {
    match array.data_type() {
        DataType::Struct(_) => {
            for child in array.as_struct().columns() {
                collect_leaves(child, out);
            }
        }
        DataType::List(_) => collect_leaves(array.as_list::<i32>().values(), out),
        _ => out.push(array),
    }
}

/// A column's sample in bytes, plain and as a dictionary.
#[derive(Debug, PartialEq)]
struct Sizes {
    values: usize,
    distinct: usize,
    plain: usize,
    distinct_bytes: usize,
}

impl Sizes {
    fn dictionary_pays(&self) -> bool {
        if self.values < MIN_SAMPLE {
            return true;
        }
        // The indices are bit-packed at the width of the largest one.
        let index_bits = usize::BITS - self.distinct.saturating_sub(1).leading_zeros();
        let indices = (self.values * index_bits.max(1) as usize).div_ceil(8);
        self.distinct_bytes + indices < self.plain
    }
}

/// The sizes of a leaf column's non-null values over the sample's arrays; `None` for a type
/// parquet never dictionary-encodes (booleans) or this writer does not write.
fn sizes(arrays: &[&ArrayRef]) -> Option<Sizes> {
    let first = arrays.first()?;
    let all = arrays.iter();
    match first.data_type() {
        DataType::Utf8 => Some(measure(
            all.flat_map(|a| a.as_string::<i32>().iter().flatten().map(str::as_bytes)),
            |v| v.len() + 4,
        )),
        DataType::Binary => Some(measure(
            all.flat_map(|a| a.as_binary::<i32>().iter().flatten()),
            |v| v.len() + 4,
        )),
        DataType::Int64 => Some(measure(
            all.flat_map(|a| a.as_primitive::<Int64Type>().iter().flatten()),
            |_| 8,
        )),
        DataType::Float64 => Some(measure(
            all.flat_map(|a| {
                a.as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .map(f64::to_bits)
            }),
            |_| 8,
        )),
        // Written as 16-byte fixed-length binary (precision 38).
        DataType::Decimal128(..) => Some(measure(
            all.flat_map(|a| a.as_primitive::<Decimal128Type>().iter().flatten()),
            |_| 16,
        )),
        _ => None,
    }
}

fn measure<T: Hash + Eq>(values: impl Iterator<Item = T>, size: impl Fn(&T) -> usize) -> Sizes {
    let mut seen = HashSet::new();
    let mut sizes = Sizes {
        values: 0,
        distinct: 0,
        plain: 0,
        distinct_bytes: 0,
    };
    for value in values {
        let bytes = size(&value);
        sizes.values += 1;
        sizes.plain += bytes;
        if seen.insert(value) {
            sizes.distinct += 1;
            sizes.distinct_bytes += bytes;
        }
    }
    sizes
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{BooleanArray, Decimal128Array, Int64Array, StringArray, StructArray};
    use arrow_schema::Field;

    use super::*;

    fn names(paths: Vec<ColumnPath>) -> Vec<String> {
        paths.iter().map(ColumnPath::string).collect()
    }

    #[test]
    fn unique_values_go_plain_and_repeated_ones_keep_the_dictionary() {
        let n = 1000;
        let unique_ints = Int64Array::from_iter_values(0..n);
        let few_ints = Int64Array::from_iter_values((0..n).map(|i| i % 7));
        let unique_text = StringArray::from_iter_values((0..n).map(|i| format!("order-{i:08}")));
        let status = StringArray::from_iter_values((0..n).map(|i| ["new", "paid"][i as usize % 2]));
        // Half repeated: long strings still pay (each one stored once, indices are small).
        let long_half =
            StringArray::from_iter_values((0..n).map(|i| "x".repeat(100 + i as usize / 2)));
        let amounts = Decimal128Array::from_iter_values((0..n).map(i128::from))
            .with_precision_and_scale(38, 2)
            .unwrap();
        let flags = BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)));
        let nested = StructArray::from(vec![
            (
                Arc::new(Field::new("n", DataType::Int64, true)),
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                Arc::new(Field::new("kind", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter_values((0..n).map(|_| "a"))) as ArrayRef,
            ),
        ]);
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            tags.values().append_value(format!("t{}", i % 3));
            tags.values().append_value(format!("u{i}"));
            tags.append(true);
        }
        let batch = RecordBatch::try_from_iter(vec![
            ("unique_ints", Arc::new(unique_ints) as ArrayRef),
            ("few_ints", Arc::new(few_ints)),
            ("unique_text", Arc::new(unique_text)),
            ("status", Arc::new(status)),
            ("long_half", Arc::new(long_half)),
            ("amount", Arc::new(amounts)),
            ("flag", Arc::new(flags)),
            ("meta", Arc::new(nested)),
            ("tags", Arc::new(tags.finish())),
        ])
        .unwrap();
        assert_eq!(
            names(plain_columns(&batch.schema(), &[batch])),
            ["unique_ints", "unique_text", "amount", "meta.n"]
        );
    }

    #[test]
    fn a_small_sample_or_nulls_keep_the_dictionary() {
        let few = Int64Array::from_iter_values(0..(MIN_SAMPLE as i64 - 1));
        let batch = RecordBatch::try_from_iter(vec![("k", Arc::new(few) as ArrayRef)]).unwrap();
        assert!(plain_columns(&batch.schema(), std::slice::from_ref(&batch)).is_empty());
        // Nulls do not count as values.
        let sparse = Int64Array::from_iter((0..1000).map(|i| (i < 10).then_some(i)));
        let batch = RecordBatch::try_from_iter(vec![("k", Arc::new(sparse) as ArrayRef)]).unwrap();
        assert!(plain_columns(&batch.schema(), std::slice::from_ref(&batch)).is_empty());
        let unique = Int64Array::from_iter_values(0..MIN_SAMPLE as i64);
        let batch = RecordBatch::try_from_iter(vec![("k", Arc::new(unique) as ArrayRef)]).unwrap();
        assert_eq!(names(plain_columns(&batch.schema(), &[batch])), ["k"]);
    }

    #[test]
    fn the_dictionary_pays_when_it_and_its_indices_are_smaller() {
        let sizes = |values, distinct, width| Sizes {
            values,
            distinct,
            plain: values * width,
            distinct_bytes: distinct * width,
        };
        // 1000 int64s, 500 distinct: 4000 + 1125 (9 bits) < 8000.
        assert!(sizes(1000, 500, 8).dictionary_pays());
        // 900 distinct: 7200 + 1250 (10 bits) > 8000.
        assert!(!sizes(1000, 900, 8).dictionary_pays());
        // One value repeated: 8 + 125 (1 bit) < 8000.
        assert!(sizes(1000, 1, 8).dictionary_pays());
    }
}
