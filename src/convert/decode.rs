//! Parquet/Arrow → items: the inverse of [`super::encode`].
//!
//! Used to verify snapshots value by value, to re-encode files written with an earlier schema
//! into the final one, and by library users who want DynamoDB items back out of a snapshot.
//! Row-at-a-time and allocation heavy: meant for correctness paths, not the hot scan path.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;

use super::number::format_decimal;
use super::shape::{ColumnType, Columns, Item};
use super::{column_names, json};
use crate::error::{Error, Result};

/// Decode every row of `batch` back into DynamoDB items, using the column types the file was
/// written with. Null values come back as absent attributes (DynamoDB NULL and a missing
/// attribute are both stored as null).
pub fn decode_batch(columns: &Columns, batch: &RecordBatch) -> Result<Vec<Item>> {
    let mut items: Vec<Item> = (0..batch.num_rows()).map(|_| Item::new()).collect();
    let names: Vec<&str> = columns.keys().map(String::as_str).collect();
    for ((name, ct), column) in columns.iter().zip(column_names(&names)) {
        // Files written before a naming rule existed hold the attribute name verbatim.
        let Some(array) = batch
            .column_by_name(&column)
            .or_else(|| batch.column_by_name(name))
        else {
            continue;
        };
        for (row, item) in items.iter_mut().enumerate() {
            if let Some(v) = value_at(ct, array.as_ref(), row)? {
                item.insert(name.clone(), v);
            }
        }
    }
    Ok(items)
}

fn bad(ct: &ColumnType, dt: &DataType) -> Error {
    Error::Internal(format!("column of type {ct:?} stored as {dt}"))
}

fn number_at(array: &dyn Array, row: usize, ct: &ColumnType) -> Result<String> {
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Decimal128(_, scale) => format_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale as u32,
        ),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        other => return Err(bad(ct, other)),
    })
}

/// The value at `row` of an array of column type `ct`; `None` when null.
pub(crate) fn value_at(ct: &ColumnType, array: &dyn Array, row: usize) -> Result<Option<AV>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let dt = array.data_type();
    let list_range = |array: &dyn Array| -> Result<(std::sync::Arc<dyn Array>, usize, usize)> {
        let list = array.as_list_opt::<i32>().ok_or_else(|| bad(ct, dt))?;
        let offsets = list.value_offsets();
        Ok((
            std::sync::Arc::clone(list.values()),
            offsets[row] as usize,
            offsets[row + 1] as usize,
        ))
    };
    Ok(Some(match ct {
        ColumnType::Null => return Ok(None),
        ColumnType::S => AV::S(
            array
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(ct, dt))?
                .value(row)
                .to_owned(),
        ),
        ColumnType::N(_) => AV::N(number_at(array, row, ct)?),
        ColumnType::B => AV::B(Blob::new(
            array
                .as_binary_opt::<i32>()
                .ok_or_else(|| bad(ct, dt))?
                .value(row),
        )),
        ColumnType::Bool => AV::Bool(
            array
                .as_boolean_opt()
                .ok_or_else(|| bad(ct, dt))?
                .value(row),
        ),
        ColumnType::SS => {
            let (values, start, end) = list_range(array)?;
            let s = values.as_string_opt::<i32>().ok_or_else(|| bad(ct, dt))?;
            AV::Ss((start..end).map(|i| s.value(i).to_owned()).collect())
        }
        ColumnType::NS(_) => {
            let (values, start, end) = list_range(array)?;
            AV::Ns(
                (start..end)
                    .map(|i| number_at(values.as_ref(), i, ct))
                    .collect::<Result<_>>()?,
            )
        }
        ColumnType::BS => {
            let (values, start, end) = list_range(array)?;
            let b = values.as_binary_opt::<i32>().ok_or_else(|| bad(ct, dt))?;
            AV::Bs((start..end).map(|i| Blob::new(b.value(i))).collect())
        }
        ColumnType::L { element } => {
            let (values, start, end) = list_range(array)?;
            AV::L(
                (start..end)
                    .map(|i| Ok(value_at(element, values.as_ref(), i)?.unwrap_or(AV::Null(true))))
                    .collect::<Result<_>>()?,
            )
        }
        ColumnType::M { fields } => {
            let s = array.as_struct_opt().ok_or_else(|| bad(ct, dt))?;
            let mut map = std::collections::HashMap::with_capacity(fields.len());
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            for ((name, child_ct), column) in fields.iter().zip(column_names(&names)) {
                if let Some(child) = s.column_by_name(&column).or_else(|| s.column_by_name(name))
                    && let Some(v) = value_at(child_ct, child.as_ref(), row)?
                {
                    map.insert(name.clone(), v);
                }
            }
            AV::M(map)
        }
        ColumnType::Json => json::from_json_str(
            array
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(ct, dt))?
                .value(row),
        )?,
    }))
}
