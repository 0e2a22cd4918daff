//! Items → Arrow arrays, for a given resolved schema ([`Columns`]).
//!
//! Pure and synchronous: runs on the conversion thread, never on network tasks. Cost is one pass
//! over the values per column plus the Arrow buffers; numbers are parsed from their text without
//! floating point.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, RecordBatchOptions, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, SchemaRef};

use super::number::{Decimal, NumberRepr};
use super::rows::{Entry, Rows, Val};
use super::shape::{ColumnType, Columns, Item};
use super::{data_type, struct_fields};
use crate::error::{AttrPath, Error, Result};

/// Encode `items` into one record batch with `schema` (built by [`super::arrow_schema`] from
/// `columns`). Every item must have been observed by the shape `columns` was resolved from.
pub fn encode_batch(columns: &Columns, schema: &SchemaRef, items: &[Item]) -> Result<RecordBatch> {
    encode_rows(columns, schema, &Rows::from_items(items)?)
}

/// [`encode_batch`] of the items of `rows`.
pub fn encode_rows(columns: &Columns, schema: &SchemaRef, rows: &Rows) -> Result<RecordBatch> {
    let n = rows.len();
    let mut arrays = Vec::with_capacity(columns.len());
    let mut path = AttrPath::default();
    let gathered = gather(n, columns.keys(), rows.items().enumerate(), rows);
    for (((name, ct), field), vals) in columns.iter().zip(schema.fields()).zip(gathered) {
        if !field.is_nullable() && vals.iter().any(|v| present(*v).is_none()) {
            return Err(Error::invalid(format!(
                "--key {name}: an item has no attribute '{name}' (or a NULL there), so it is \
                 no key attribute; give the table's key attributes, partition key first"
            )));
        }
        path.push_field(name);
        arrays.push(build_array(ct, &vals, rows, &mut path)?);
        path.pop();
    }
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
        .map_err(|e| Error::format("building a record batch", e))
}

/// The values of the attributes `names` in `maps` (each an item or map, with its row, of `n`
/// rows): for each name, one value (or `None`) per row. Names are looked up once, not per
/// entry.
fn gather<'a>(
    n: usize,
    names: impl Iterator<Item = &'a String>,
    maps: impl Iterator<Item = (usize, &'a [Entry])>,
    rows: &Rows,
) -> Vec<Vec<Option<Val>>> {
    let mut column_of: Vec<Option<usize>> = vec![None; rows.names().len()];
    let mut columns = 0;
    for (column, name) in names.enumerate() {
        if let Some(name) = rows.name_of(name) {
            column_of[name.index()] = Some(column);
        }
        columns = column + 1;
    }
    let mut out = vec![vec![None; n]; columns];
    for (row, entries) in maps {
        for e in entries {
            if let Some(column) = column_of[e.name.index()] {
                out[column][row] = Some(e.value);
            }
        }
    }
    out
}

fn mismatch(ct: &ColumnType, v: Val, rows: &Rows, path: &AttrPath) -> Error {
    Error::Internal(format!(
        "attribute {path}: value {:?} does not fit the inferred type {ct:?}",
        rows.to_value(v)
    ))
}

/// The struct array of a map attribute whose fields are `fields`.
fn struct_array(
    ct: &ColumnType,
    fields: &indexmap::IndexMap<String, ColumnType>,
    vals: &[Option<Val>],
    rows: &Rows,
    path: &mut AttrPath,
) -> Result<ArrayRef> {
    let n = vals.len();
    let mut validity = Vec::with_capacity(n);
    for v in vals {
        match present(*v) {
            Some(Val::M(_)) => validity.push(true),
            None => validity.push(false),
            Some(other) => return Err(mismatch(ct, other, rows, path)),
        }
    }
    let maps = vals.iter().enumerate().filter_map(|(row, v)| match v {
        Some(Val::M(m)) => Some((row, rows.map(*m))),
        _ => None,
    });
    let gathered = gather(n, fields.keys(), maps, rows);
    let mut children = Vec::with_capacity(fields.len());
    for ((name, child_ct), values) in fields.iter().zip(gathered) {
        path.push_field(name);
        let child = build_array(child_ct, &values, rows, path);
        path.pop();
        children.push(child?);
    }
    let nulls = NullBuffer::from(validity);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(Arc::new(
        StructArray::try_new(struct_fields(fields), children, nulls)
            .map_err(|e| Error::format(format!("building struct {path}"), e))?,
    ))
}

/// Build the array of one attribute position from its values (`None` = absent).
fn build_array(
    ct: &ColumnType,
    vals: &[Option<Val>],
    rows: &Rows,
    path: &mut AttrPath,
) -> Result<ArrayRef> {
    let n = vals.len();
    let text_len = |vals: &[Option<Val>]| -> usize {
        vals.iter()
            .map(|v| match v {
                Some(Val::S(s) | Val::B(s)) => s.len(),
                _ => 0,
            })
            .sum()
    };
    Ok(match ct {
        ColumnType::Null => arrow_array::new_null_array(&DataType::Utf8, n),
        ColumnType::S => {
            let mut b = StringBuilder::with_capacity(n, text_len(vals));
            for v in vals {
                match present(*v) {
                    Some(Val::S(s)) => b.append_value(rows.text(s)),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, rows, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::N(repr) => {
            let mut texts = Vec::with_capacity(n);
            for v in vals {
                match present(*v) {
                    Some(Val::N(s)) => texts.push(Some(rows.text(s))),
                    None => texts.push(None),
                    Some(other) => return Err(mismatch(ct, other, rows, path)),
                }
            }
            number_array(*repr, &texts, path)?
        }
        ColumnType::B => {
            let mut b = BinaryBuilder::with_capacity(n, text_len(vals));
            for v in vals {
                match present(*v) {
                    Some(Val::B(s)) => b.append_value(rows.bytes(s)),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, rows, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in vals {
                match present(*v) {
                    Some(Val::Bool(x)) => b.append_value(x),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, rows, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::SS | ColumnType::NS(_) | ColumnType::BS | ColumnType::L { .. } => {
            let (offsets, nulls, elems) = list_parts(ct, vals, rows, path)?;
            let child = match ct {
                ColumnType::SS => ColumnType::S,
                ColumnType::NS(repr) => ColumnType::N(*repr),
                ColumnType::BS => ColumnType::B,
                ColumnType::L { element } => element.as_ref().clone(),
                _ => unreachable!("matched above"),
            };
            path.push_index(0);
            let child = build_array(&child, &elems, rows, path);
            path.pop();
            list_array(ct, offsets, child?, nulls)?
        }
        ColumnType::M { fields } => struct_array(ct, fields, vals, rows, path)?,
        ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 32);
            let mut json = Vec::new();
            for v in vals {
                match present(*v) {
                    Some(v) => {
                        json.clear();
                        rows.write_json(v, &mut json);
                        b.append_value(
                            std::str::from_utf8(&json).expect("JSON from UTF-8 text is UTF-8"),
                        );
                    }
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// A list-like column taken apart: offsets, validity and the flattened elements.
type ListParts = (OffsetBuffer<i32>, Option<NullBuffer>, Vec<Option<Val>>);

/// [`ListParts`] of a list-like column (a list or a set of the kind `ct` says).
fn list_parts(
    ct: &ColumnType,
    vals: &[Option<Val>],
    rows: &Rows,
    path: &AttrPath,
) -> Result<ListParts> {
    let mut lengths = Vec::with_capacity(vals.len());
    let mut validity = Vec::with_capacity(vals.len());
    let mut elems = Vec::new();
    for v in vals {
        match present(*v) {
            None => {
                lengths.push(0);
                validity.push(false);
            }
            Some(v) => {
                let items = match (ct, v) {
                    (ColumnType::SS, Val::SS(s))
                    | (ColumnType::NS(_), Val::NS(s))
                    | (ColumnType::BS, Val::BS(s))
                    | (ColumnType::L { .. }, Val::L(s)) => rows.list(s),
                    _ => return Err(mismatch(ct, v, rows, path)),
                };
                lengths.push(items.len());
                validity.push(true);
                elems.extend(items.iter().copied().map(Some));
            }
        }
    }
    if elems.len() > i32::MAX as usize {
        return Err(Error::unrepresentable(
            path,
            "more than 2^31 list elements in one batch; use a smaller batch size",
        ));
    }
    let nulls = NullBuffer::from(validity);
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok((OffsetBuffer::from_lengths(lengths), nulls, elems))
}

fn list_array(
    ct: &ColumnType,
    offsets: OffsetBuffer<i32>,
    values: ArrayRef,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    let DataType::List(field) = data_type(ct) else {
        return Err(Error::Internal(format!("{ct:?} is not a list type")));
    };
    Ok(Arc::new(
        ListArray::try_new(field, offsets, values, nulls)
            .map_err(|e| Error::format("building a list", e))?,
    ))
}

/// Exact number array in representation `repr` from number texts (`None` = null).
fn number_array(repr: NumberRepr, texts: &[Option<&str>], path: &AttrPath) -> Result<ArrayRef> {
    let n = texts.len();
    let unfit = |t: &str| {
        Error::Internal(format!(
            "number {t} at {path} does not fit the inferred {repr:?}"
        ))
    };
    Ok(match repr {
        NumberRepr::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for t in texts {
                match t {
                    Some(t) => b.append_value(match t.parse::<i64>() {
                        Ok(v) => v,
                        Err(_) => Decimal::parse(t)
                            .and_then(|d| d.to_i64())
                            .ok_or_else(|| unfit(t))?,
                    }),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        NumberRepr::Decimal { scale } => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(38, scale as i8)
                .map_err(|e| Error::format("decimal type", e))?;
            for t in texts {
                match t {
                    Some(t) => b.append_value(
                        Decimal::parse(t)
                            .and_then(|d| d.unscaled(scale as u32))
                            .ok_or_else(|| unfit(t))?,
                    ),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        NumberRepr::Text => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for t in texts {
                b.append_option(*t);
            }
            Arc::new(b.finish())
        }
        NumberRepr::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for t in texts {
                match t {
                    Some(t) => b.append_value(t.trim().parse::<f64>().map_err(|_| unfit(t))?),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// The value unless it is absent or NULL.
fn present(v: Option<Val>) -> Option<Val> {
    v.filter(|v| *v != Val::Null)
}
