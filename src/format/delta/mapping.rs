//! Delta column mapping by name (`delta.columnMapping.mode = name`; protocol reader 3 / writer
//! 7 with the `columnMapping` table feature): columns keep their exact attribute names, spaces and `,;{}()=` included, because the
//! data files store every column (nested or not) under a physical name, `col-<uuid>`, with its
//! column id as the Parquet `field_id`; the schema maps each name to both
//! (`delta.columnMapping.physicalName`, `delta.columnMapping.id`), and the table property
//! `delta.columnMapping.maxColumnId` holds the highest id ever given.
//!
//! A column new to the table gets a new physical name and the next id, in the same commit that
//! adds it to the schema (written by ddbsnap itself: the kernel assigns names of its own, which
//! files already written could not carry). Names differing only in case still get the rename
//! rule of unmapped tables (Spark and Databricks take them for one column); nothing else is
//! renamed.

use std::collections::HashMap;

use arrow_schema::{Field, Fields, Schema};
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::schema::{ArrayType, DataType, MetadataValue, StructField, StructType};

use crate::convert::{ATTRIBUTE_NAME_KEY, exact_column_names};
use crate::error::{Error, Result};
use crate::sink::physical::{PhysicalField, PhysicalNames, attribute_of};

/// The table property that turns column mapping on.
pub(super) const MODE: &str = "delta.columnMapping.mode";
/// The table property holding the highest column id given.
pub(super) const MAX_COLUMN_ID: &str = "delta.columnMapping.maxColumnId";
const ID: &str = "delta.columnMapping.id";
const PHYSICAL_NAME: &str = "delta.columnMapping.physicalName";

/// A mapped table's columns: where each is stored, and the highest id given.
#[derive(Debug, Clone, Default)]
pub(super) struct Mapping {
    pub(super) names: PhysicalNames,
    pub(super) max_id: i64,
}

impl Mapping {
    /// The mapping of a table whose schema is `schema` and whose `maxColumnId` is `max_id`.
    pub(super) fn of(schema: &StructType, max_id: Option<i64>) -> Result<Self> {
        let names = names_of(schema)?;
        Ok(Mapping {
            names,
            max_id: max_id.unwrap_or(0),
        })
    }

    /// This mapping with a physical name and the next id for every column of `columns` (a
    /// column schema) that it lacks, at every level.
    pub(super) fn extended(&self, columns: &Schema) -> Self {
        let mut out = self.clone();
        out.names = extend(&self.names, columns.fields(), &mut out.max_id);
        out
    }

    /// The Delta schema of `columns` (a column schema) under this mapping: each column under
    /// its attribute name (see the module documentation), with its id and physical name.
    pub(super) fn schema(&self, columns: &Schema) -> Result<StructType> {
        let exact = Schema::new(exact_fields(columns.fields()));
        let plain = StructType::try_from_arrow(&exact).map_err(|e| {
            Error::Internal(format!("the run's schema has no Delta equivalent: {e}"))
        })?;
        annotate(&plain, &self.names)
    }
}

fn names_of(schema: &StructType) -> Result<PhysicalNames> {
    let mut out = PhysicalNames::default();
    for field in schema.fields() {
        let attribute = match field.metadata().get(ATTRIBUTE_NAME_KEY) {
            Some(MetadataValue::String(name)) => name.clone(),
            _ => field.name().clone(),
        };
        let (Some(MetadataValue::String(name)), Some(MetadataValue::Number(id))) = (
            field.metadata().get(PHYSICAL_NAME),
            field.metadata().get(ID),
        ) else {
            return Err(Error::Internal(format!(
                "column {} of a table with column mapping has no physical name or id",
                field.name()
            )));
        };
        let children = match nested(field.data_type()) {
            Some(inner) => names_of(inner)?,
            None => PhysicalNames::default(),
        };
        out.insert(
            attribute,
            PhysicalField {
                name: name.clone(),
                id: *id,
                children,
            },
        );
    }
    Ok(out)
}

/// The struct a column of type `dt` holds (also inside arrays), if any.
fn nested(dt: &DataType) -> Option<&StructType> {
    match dt {
        DataType::Struct(inner) => Some(inner),
        DataType::Array(array) => nested(array.element_type()),
        _ => None,
    }
}

fn extend(known: &PhysicalNames, fields: &Fields, max_id: &mut i64) -> PhysicalNames {
    let mut out = known.clone();
    for field in fields {
        let attribute = attribute_of(field);
        let inner = arrow_nested(field.data_type());
        let entry = match known.get(attribute) {
            Some(existing) => existing.clone(),
            None => {
                *max_id += 1;
                PhysicalField {
                    name: format!("col-{}", uuid_v4()),
                    id: *max_id,
                    children: PhysicalNames::default(),
                }
            }
        };
        let children = match inner {
            Some(inner) => extend(&entry.children, inner, max_id),
            None => entry.children,
        };
        out.insert(attribute.to_owned(), PhysicalField { children, ..entry });
    }
    out
}

fn arrow_nested(dt: &arrow_schema::DataType) -> Option<&Fields> {
    match dt {
        arrow_schema::DataType::Struct(fields) => Some(fields),
        arrow_schema::DataType::List(element) => arrow_nested(element.data_type()),
        _ => None,
    }
}

/// `fields` under their exact column names (the attribute's own name, see
/// [`exact_column_names`]), `ddbsnap.attribute` kept only where a name still differs.
fn exact_fields(fields: &Fields) -> Vec<Field> {
    let attributes: Vec<&str> = fields.iter().map(|f| attribute_of(f)).collect();
    fields
        .iter()
        .zip(exact_column_names(&attributes))
        .map(|(field, column)| {
            let data_type = match arrow_nested(field.data_type()) {
                Some(inner) => with_arrow_fields(field.data_type(), exact_fields(inner).into()),
                None => field.data_type().clone(),
            };
            let attribute = attribute_of(field);
            let metadata = match column.as_ref() == attribute {
                true => HashMap::new(),
                false => HashMap::from([(ATTRIBUTE_NAME_KEY.to_owned(), attribute.to_owned())]),
            };
            Field::new(column.as_ref(), data_type, field.is_nullable()).with_metadata(metadata)
        })
        .collect()
}

fn with_arrow_fields(dt: &arrow_schema::DataType, fields: Fields) -> arrow_schema::DataType {
    match dt {
        arrow_schema::DataType::Struct(_) => arrow_schema::DataType::Struct(fields),
        arrow_schema::DataType::List(element) => arrow_schema::DataType::List(std::sync::Arc::new(
            element
                .as_ref()
                .clone()
                .with_data_type(with_arrow_fields(element.data_type(), fields)),
        )),
        other => other.clone(),
    }
}

/// `schema` with each field's id and physical name from `names`.
fn annotate(schema: &StructType, names: &PhysicalNames) -> Result<StructType> {
    let fields = schema
        .fields()
        .map(|field| {
            let attribute = match field.metadata().get(ATTRIBUTE_NAME_KEY) {
                Some(MetadataValue::String(name)) => name.as_str(),
                _ => field.name().as_str(),
            };
            let physical = names.get(attribute).ok_or_else(|| {
                Error::Internal(format!("column {attribute} has no physical name"))
            })?;
            let data_type = annotate_type(field.data_type(), &physical.children)?;
            Ok(
                StructField::new(field.name().clone(), data_type, field.is_nullable())
                    .with_metadata(field.metadata().clone())
                    .add_metadata([
                        (ID, MetadataValue::Number(physical.id)),
                        (PHYSICAL_NAME, MetadataValue::String(physical.name.clone())),
                    ]),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    StructType::try_new(fields).map_err(|e| Error::Internal(e.to_string()))
}

fn annotate_type(dt: &DataType, names: &PhysicalNames) -> Result<DataType> {
    Ok(match dt {
        DataType::Struct(inner) => DataType::Struct(Box::new(annotate(inner, names)?)),
        DataType::Array(array) => DataType::Array(Box::new(ArrayType::new(
            annotate_type(array.element_type(), names)?,
            array.contains_null(),
        ))),
        other => other.clone(),
    })
}

/// A random (version 4) UUID: a new table's id, a new column's physical name.
pub(super) fn uuid_v4() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType as Arrow;

    #[test]
    fn new_columns_get_the_next_ids_and_keep_their_exact_names() {
        let columns = Schema::new(vec![
            Field::new("pk", Arrow::Utf8, false),
            Field::new("order_date", Arrow::Utf8, true).with_metadata(HashMap::from([(
                ATTRIBUTE_NAME_KEY.to_owned(),
                "order date".to_owned(),
            )])),
            Field::new(
                "m",
                Arrow::Struct(vec![Field::new("a,b", Arrow::Int64, true)].into()),
                true,
            ),
        ]);
        let first = Mapping::default().extended(&columns);
        assert_eq!(first.max_id, 4);
        let schema = first.schema(&columns).unwrap();
        let names: Vec<&str> = schema.fields().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["pk", "order date", "m"]);
        let date = schema.field("order date").unwrap();
        assert!(!date.metadata().contains_key(ATTRIBUTE_NAME_KEY));
        assert_eq!(date.metadata()[ID], MetadataValue::Number(2));
        // Read back from the schema: the same names; a wider run adds only its new column.
        let again = Mapping::of(&schema, Some(first.max_id)).unwrap();
        assert_eq!(again.names, first.names);
        let wider = Schema::new(
            columns
                .fields()
                .iter()
                .cloned()
                .chain([std::sync::Arc::new(Field::new(
                    "n (x)",
                    Arrow::Boolean,
                    true,
                ))])
                .collect::<Vec<_>>(),
        );
        let next = again.extended(&wider);
        assert_eq!(next.max_id, 5);
        assert_eq!(next.names.get("pk"), first.names.get("pk"));
        assert_eq!(next.names.get("n (x)").unwrap().id, 5);
    }
}
