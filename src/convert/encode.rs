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
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;

use super::number::{Decimal, NumberRepr};
use super::shape::{ColumnType, Columns, Item};
use super::{data_type, json, struct_fields};
use crate::error::{AttrPath, Error, Result};

/// Encode `items` into one record batch with `schema` (built by [`super::arrow_schema`] from
/// `columns`). Every item must have been observed by the shape `columns` was resolved from.
pub fn encode_batch(columns: &Columns, schema: &SchemaRef, items: &[Item]) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(columns.len());
    let mut path = AttrPath::default();
    let mut vals: Vec<Option<&AV>> = Vec::with_capacity(items.len());
    for ((name, ct), field) in columns.iter().zip(schema.fields()) {
        vals.clear();
        vals.extend(items.iter().map(|item| item.get(name.as_str())));
        if !field.is_nullable() && vals.iter().any(|v| present(*v).is_none()) {
            return Err(Error::invalid(format!(
                "an item has no key attribute '{name}' (or a NULL there): the key attributes \
                 given (--key) must be the table's"
            )));
        }
        path.push_field(name);
        arrays.push(build_array(ct, &vals, &mut path)?);
        path.pop();
    }
    let options = RecordBatchOptions::new().with_row_count(Some(items.len()));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
        .map_err(|e| Error::format("building a record batch", e))
}

fn mismatch(ct: &ColumnType, v: &AV, path: &AttrPath) -> Error {
    Error::Internal(format!(
        "attribute {path}: value {v:?} does not fit the inferred type {ct:?}"
    ))
}

/// Build the array of one attribute position from its values (`None` = absent).
fn build_array(ct: &ColumnType, vals: &[Option<&AV>], path: &mut AttrPath) -> Result<ArrayRef> {
    let n = vals.len();
    Ok(match ct {
        ColumnType::Null => arrow_array::new_null_array(&DataType::Utf8, n),
        ColumnType::S => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in vals {
                match present(*v) {
                    Some(AV::S(s)) => b.append_value(s),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::N(repr) => {
            let mut texts = Vec::with_capacity(n);
            for v in vals {
                match present(*v) {
                    Some(AV::N(s)) => texts.push(Some(s.as_str())),
                    None => texts.push(None),
                    Some(other) => return Err(mismatch(ct, other, path)),
                }
            }
            number_array(*repr, &texts, path)?
        }
        ColumnType::B => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            for v in vals {
                match present(*v) {
                    Some(AV::B(blob)) => b.append_value(blob.as_ref()),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in vals {
                match present(*v) {
                    Some(AV::Bool(x)) => b.append_value(*x),
                    None => b.append_null(),
                    Some(other) => return Err(mismatch(ct, other, path)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::SS => {
            let (offsets, nulls, elems) = list_parts(ct, vals, path, |v| match v {
                AV::Ss(s) => Some(s.as_slice()),
                _ => None,
            })?;
            let mut b = StringBuilder::with_capacity(elems.len(), elems.len() * 16);
            elems.iter().for_each(|s| b.append_value(s));
            list_array(ct, offsets, Arc::new(b.finish()), nulls)?
        }
        ColumnType::NS(repr) => {
            let (offsets, nulls, elems) = list_parts(ct, vals, path, |v| match v {
                AV::Ns(s) => Some(s.as_slice()),
                _ => None,
            })?;
            let texts: Vec<Option<&str>> = elems.iter().map(|s| Some(s.as_str())).collect();
            list_array(ct, offsets, number_array(*repr, &texts, path)?, nulls)?
        }
        ColumnType::BS => {
            let (offsets, nulls, elems) = list_parts(ct, vals, path, |v| match v {
                AV::Bs(s) => Some(s.as_slice()),
                _ => None,
            })?;
            let mut b = BinaryBuilder::with_capacity(elems.len(), elems.len() * 16);
            elems
                .iter()
                .for_each(|x: &&Blob| b.append_value(x.as_ref()));
            list_array(ct, offsets, Arc::new(b.finish()), nulls)?
        }
        ColumnType::L { element } => {
            let (offsets, nulls, elems) = list_parts(ct, vals, path, |v| match v {
                AV::L(s) => Some(s.as_slice()),
                _ => None,
            })?;
            let child_vals: Vec<Option<&AV>> = elems.into_iter().map(Some).collect();
            path.push_index(0);
            let child = build_array(element, &child_vals, path);
            path.pop();
            list_array(ct, offsets, child?, nulls)?
        }
        ColumnType::M { fields } => {
            let mut validity = Vec::with_capacity(n);
            for v in vals {
                match present(*v) {
                    Some(AV::M(_)) => validity.push(true),
                    None => validity.push(false),
                    Some(other) => return Err(mismatch(ct, other, path)),
                }
            }
            let mut children = Vec::with_capacity(fields.len());
            let mut child_vals: Vec<Option<&AV>> = Vec::with_capacity(n);
            for (name, child_ct) in fields {
                child_vals.clear();
                child_vals.extend(vals.iter().map(|v| match v {
                    Some(AV::M(m)) => m.get(name.as_str()),
                    _ => None,
                }));
                path.push_field(name);
                let child = build_array(child_ct, &child_vals, path);
                path.pop();
                children.push(child?);
            }
            let nulls = NullBuffer::from(validity);
            let nulls = (nulls.null_count() > 0).then_some(nulls);
            Arc::new(
                StructArray::try_new(struct_fields(fields), children, nulls)
                    .map_err(|e| Error::format(format!("building struct {path}"), e))?,
            )
        }
        ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 32);
            for v in vals {
                match present(*v) {
                    Some(v) => b.append_value(json::to_json_string(v, path)?),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// Offsets, validity and flattened elements of a list-like column.
fn list_parts<'a, T>(
    ct: &ColumnType,
    vals: &[Option<&'a AV>],
    path: &AttrPath,
    get: impl Fn(&'a AV) -> Option<&'a [T]>,
) -> Result<(OffsetBuffer<i32>, Option<NullBuffer>, Vec<&'a T>)> {
    let mut lengths = Vec::with_capacity(vals.len());
    let mut validity = Vec::with_capacity(vals.len());
    let mut elems = Vec::new();
    for v in vals {
        match v {
            None | Some(AV::Null(_)) => {
                lengths.push(0);
                validity.push(false);
            }
            Some(v) => {
                let items = get(v).ok_or_else(|| mismatch(ct, v, path))?;
                lengths.push(items.len());
                validity.push(true);
                elems.extend(items.iter());
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
fn present(v: Option<&AV>) -> Option<&AV> {
    v.filter(|v| !matches!(v, AV::Null(_)))
}
