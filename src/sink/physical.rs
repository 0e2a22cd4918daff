//! Physical column names: the names and Parquet field ids a table's data files store its
//! columns under when they differ from the column names (a Delta table with column mapping,
//! whose files name every column `col-<uuid>` and carry its column id as the Parquet
//! `field_id`).
//!
//! Items are encoded under their column names as always ([`crate::convert`]); a batch is then
//! renamed to the file schema ([`PhysicalNames::file_schema`], [`retype`]) on its way into the
//! file, and renamed back ([`PhysicalNames::column_schema`]) on its way out. Renaming never
//! copies values: the arrays' buffers are shared, only their field names change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use crate::convert::{ATTRIBUTE_NAME_KEY, column_names};
use crate::error::{Error, Result};

/// The physical name and Parquet field id of each attribute at one struct level (top-level
/// columns, or the fields of one map column), keyed by attribute name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PhysicalNames {
    fields: BTreeMap<String, PhysicalField>,
}

/// Where one attribute is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhysicalField {
    /// The column's name in the data files.
    pub(crate) name: String,
    /// Its Parquet field id.
    pub(crate) id: i64,
    /// The fields of a map column (also inside lists), when it has any.
    pub(crate) children: PhysicalNames,
}

/// The attribute a field of a column schema holds: its `ddbsnap.attribute`, else its name.
pub(crate) fn attribute_of(field: &Field) -> &str {
    field
        .metadata()
        .get(ATTRIBUTE_NAME_KEY)
        .map_or(field.name().as_str(), String::as_str)
}

/// The struct fields a column of type `dt` holds (also inside lists), if any.
fn struct_fields(dt: &DataType) -> Option<&Fields> {
    match dt {
        DataType::Struct(fields) => Some(fields),
        DataType::List(element) => struct_fields(element.data_type()),
        _ => None,
    }
}

/// `dt` with the fields of its structs (also inside lists) replaced by `fields`.
fn with_struct_fields(dt: &DataType, fields: Fields) -> DataType {
    match dt {
        DataType::Struct(_) => DataType::Struct(fields),
        DataType::List(element) => DataType::List(Arc::new(
            element
                .as_ref()
                .clone()
                .with_data_type(with_struct_fields(element.data_type(), fields)),
        )),
        other => other.clone(),
    }
}

impl PhysicalNames {
    /// Where `attribute` is stored, if it has a physical name.
    pub(crate) fn get(&self, attribute: &str) -> Option<&PhysicalField> {
        self.fields.get(attribute)
    }

    /// Record where `attribute` is stored.
    pub(crate) fn insert(&mut self, attribute: String, field: PhysicalField) {
        self.fields.insert(attribute, field);
    }

    /// The schema of a data file holding the columns `columns` (a column schema, see
    /// [`crate::convert::arrow_schema`]): each field under its physical name, with its Parquet
    /// field id and its attribute name (`ddbsnap.attribute`) in the field metadata. An error
    /// when a column has no physical name.
    pub(crate) fn file_schema(&self, columns: &Schema) -> Result<SchemaRef> {
        Ok(Arc::new(Schema::new_with_metadata(
            self.file_fields(columns.fields())?,
            columns.metadata().clone(),
        )))
    }

    fn file_fields(&self, fields: &Fields) -> Result<Fields> {
        fields
            .iter()
            .map(|field| {
                let attribute = attribute_of(field);
                let physical = self.get(attribute).ok_or_else(|| {
                    Error::Internal(format!("column {attribute} has no physical name"))
                })?;
                let data_type = match struct_fields(field.data_type()) {
                    Some(inner) => {
                        with_struct_fields(field.data_type(), physical.children.file_fields(inner)?)
                    }
                    None => field.data_type().clone(),
                };
                let metadata = HashMap::from([
                    (
                        PARQUET_FIELD_ID_META_KEY.to_owned(),
                        physical.id.to_string(),
                    ),
                    (ATTRIBUTE_NAME_KEY.to_owned(), attribute.to_owned()),
                ]);
                Ok(Arc::new(
                    Field::new(physical.name.as_str(), data_type, field.is_nullable())
                        .with_metadata(metadata),
                ))
            })
            .collect()
    }

    /// The column schema of a data file whose schema is `file`: each field under its column
    /// name again (see [`crate::convert::column_names`]). A field's attribute is the one these
    /// names give its physical name, else its own `ddbsnap.attribute`, else its name (a file of
    /// a table without physical names reads as it is).
    pub(crate) fn column_schema(&self, file: &Schema) -> SchemaRef {
        Arc::new(Schema::new_with_metadata(
            self.column_fields(file.fields()),
            file.metadata().clone(),
        ))
    }

    fn column_fields(&self, fields: &Fields) -> Fields {
        let by_physical: HashMap<&str, (&str, &PhysicalField)> = self
            .fields
            .iter()
            .map(|(attribute, f)| (f.name.as_str(), (attribute.as_str(), f)))
            .collect();
        let found: Vec<(&str, Option<&PhysicalField>)> = fields
            .iter()
            .map(|field| match by_physical.get(field.name().as_str()) {
                Some((attribute, physical)) => (*attribute, Some(*physical)),
                None => (attribute_of(field), None),
            })
            .collect();
        let attributes: Vec<&str> = found.iter().map(|(a, _)| *a).collect();
        let empty = PhysicalNames::default();
        fields
            .iter()
            .zip(&found)
            .zip(column_names(&attributes))
            .map(|((field, (attribute, physical)), column)| {
                let data_type = match struct_fields(field.data_type()) {
                    Some(inner) => with_struct_fields(
                        field.data_type(),
                        physical
                            .map_or(&empty, |p| &p.children)
                            .column_fields(inner),
                    ),
                    None => field.data_type().clone(),
                };
                let mut out = Field::new(column.as_ref(), data_type, field.is_nullable());
                if column != *attribute {
                    out = out.with_metadata(HashMap::from([(
                        ATTRIBUTE_NAME_KEY.to_owned(),
                        (*attribute).to_owned(),
                    )]));
                }
                Arc::new(out)
            })
            .collect()
    }
}

/// `batch` under `schema`, which has the same columns, types and order with other names (the
/// file schema of its column schema, or back): the arrays are shared, not copied.
pub(crate) fn retype(batch: &RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| retype_array(array, field.data_type()))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::Internal(format!("renaming a batch's columns: {e}")))
}

fn retype_array(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let fail = |e: arrow_schema::ArrowError| Error::Internal(format!("renaming a column: {e}"));
    Ok(match to {
        DataType::Struct(fields) => {
            let from = array.as_struct();
            let children = from
                .columns()
                .iter()
                .zip(fields)
                .map(|(child, field)| retype_array(child, field.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(
                StructArray::try_new(fields.clone(), children, from.nulls().cloned())
                    .map_err(fail)?,
            )
        }
        DataType::List(element) => {
            let from = array.as_list::<i32>();
            let values = retype_array(from.values(), element.data_type())?;
            let element: FieldRef = Arc::clone(element);
            Arc::new(
                ListArray::try_new(
                    element,
                    from.offsets().clone(),
                    values,
                    from.nulls().cloned(),
                )
                .map_err(fail)?,
            )
        }
        _ => Arc::clone(array),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Rows, arrow_schema, encode_rows};
    use aws_sdk_dynamodb::types::AttributeValue as AV;

    fn names(pairs: &[(&str, &str, i64, PhysicalNames)]) -> PhysicalNames {
        let mut out = PhysicalNames::default();
        for (attribute, name, id, children) in pairs {
            out.insert(
                (*attribute).to_owned(),
                PhysicalField {
                    name: (*name).to_owned(),
                    id: *id,
                    children: children.clone(),
                },
            );
        }
        out
    }

    #[test]
    fn renames_every_level_both_ways_without_copying_values() {
        let item: crate::convert::Item = [
            ("pk".to_owned(), AV::S("a".into())),
            ("order date".to_owned(), AV::S("2026".into())),
            ("a_b".to_owned(), AV::N("1".into())),
            (
                "m".to_owned(),
                AV::L(vec![AV::M(
                    [("x y".to_owned(), AV::Bool(true))].into_iter().collect(),
                )]),
            ),
        ]
        .into_iter()
        .collect();
        let mut shape = crate::convert::TableShape::default();
        shape.observe(&item).unwrap();
        let columns = shape.resolve(crate::convert::NumberMode::default());
        let schema = arrow_schema(&columns);
        let batch = encode_rows(&columns, &schema, &Rows::from_items(&[item]).unwrap()).unwrap();
        let physical = names(&[
            ("pk", "col-1", 1, PhysicalNames::default()),
            ("order date", "col-2", 2, PhysicalNames::default()),
            ("a_b", "col-3", 3, PhysicalNames::default()),
            (
                "m",
                "col-4",
                4,
                names(&[("x y", "col-5", 5, PhysicalNames::default())]),
            ),
        ]);
        let file = physical.file_schema(&schema).unwrap();
        for field in file.fields() {
            let attribute = &field.metadata()[ATTRIBUTE_NAME_KEY];
            let expected = physical.get(attribute).unwrap();
            assert_eq!(field.name(), &expected.name);
            assert_eq!(
                field.metadata()[PARQUET_FIELD_ID_META_KEY],
                expected.id.to_string()
            );
        }
        let stored = retype(&batch, Arc::clone(&file)).unwrap();
        let nested = stored.column_by_name("col-4").unwrap().as_list::<i32>();
        assert_eq!(nested.values().as_struct().fields()[0].name(), "col-5");
        let date = schema.index_of("order_date").unwrap();
        // Back: by the names, or by each field's own attribute name.
        for back in [
            physical.column_schema(&file),
            PhysicalNames::default().column_schema(&file),
        ] {
            assert_eq!(back.as_ref(), schema.as_ref());
            let read = retype(&stored, back).unwrap();
            assert_eq!(read, batch);
            assert_eq!(
                read.column(date).to_data().buffers()[1].as_ptr(),
                batch.column(date).to_data().buffers()[1].as_ptr()
            );
        }
    }
}
