//! DynamoDB items ↔ Arrow, losslessly.
//!
//! Three steps, all pure and synchronous (they run on the conversion thread, never on the
//! network tasks):
//!
//! 1. [`TableShape::observe`] widens the inferred schema with every item (not the first page
//!    only; see [`shape`] for the lattice).
//! 2. [`TableShape::resolve`] gives the [`Columns`] to write and [`arrow_schema()`] their Arrow
//!    schema.
//! 3. [`encode_batch`] builds a `RecordBatch`; [`decode_batch`] turns one back into items.
//!
//! | DynamoDB | Arrow / Parquet |
//! |---|---|
//! | S | Utf8 |
//! | N | Int64 if every value is an integer that fits; else Decimal128(38, s) if every value fits 38 digits at one scale s; else Utf8 with the exact canonical number text. `--numbers float64`: Float64 (lossy, opt-in) |
//! | B | Binary |
//! | BOOL | Boolean |
//! | NULL | null (a NULL and a missing attribute read the same) |
//! | SS / NS / BS | List of Utf8 / of the number type / of Binary, non-null elements |
//! | L | List of the union type of its elements (nullable elements) |
//! | M | Struct with the union of all maps' fields (all nullable) |
//! | conflicting types, empty-only maps, maps with > 1000 distinct keys | Utf8 holding DynamoDB JSON |
//! | only NULLs | an all-null Utf8 column |

pub mod decode;
pub mod encode;
pub mod json;
pub mod number;
pub mod shape;

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

pub use decode::decode_batch;
pub use encode::encode_batch;
pub use number::{NumberMode, NumberRepr};
pub use shape::{ColumnType, Columns, Item, KeyKind, Shape, TableShape};

/// Name of the child field of every list column (the Parquet convention Spark also writes).
pub const LIST_ELEMENT: &str = "element";

/// Arrow type of a number representation.
pub fn number_data_type(repr: NumberRepr) -> DataType {
    match repr {
        NumberRepr::Int64 => DataType::Int64,
        NumberRepr::Decimal { scale } => DataType::Decimal128(38, scale as i8),
        NumberRepr::Text => DataType::Utf8,
        NumberRepr::Float64 => DataType::Float64,
    }
}

pub(crate) fn list_field(element: DataType, nullable: bool) -> Field {
    Field::new(LIST_ELEMENT, element, nullable)
}

pub(crate) fn struct_fields(fields: &Columns) -> Fields {
    fields
        .iter()
        .map(|(name, ct)| Field::new(name, data_type(ct), true))
        .collect()
}

/// Arrow type of a column type (see the table in the module docs).
pub fn data_type(ct: &ColumnType) -> DataType {
    match ct {
        ColumnType::Null | ColumnType::S | ColumnType::Json => DataType::Utf8,
        ColumnType::N(r) => number_data_type(*r),
        ColumnType::B => DataType::Binary,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::SS => DataType::List(Arc::new(list_field(DataType::Utf8, false))),
        ColumnType::NS(r) => DataType::List(Arc::new(list_field(number_data_type(*r), false))),
        ColumnType::BS => DataType::List(Arc::new(list_field(DataType::Binary, false))),
        ColumnType::L { element: e } => DataType::List(Arc::new(list_field(data_type(e), true))),
        ColumnType::M { fields } => DataType::Struct(struct_fields(fields)),
    }
}

/// The Arrow schema of a resolved table schema: one nullable column per attribute, names
/// verbatim.
pub fn arrow_schema(columns: &Columns) -> SchemaRef {
    Arc::new(Schema::new(struct_fields(columns)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AttrPath;
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue as AV;

    fn item(entries: Vec<(&str, AV)>) -> Item {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// What decoding is documented to give back: NULL map entries read as absent.
    fn normalize(v: &AV) -> Option<AV> {
        match v {
            AV::Null(_) => None,
            AV::M(m) => Some(AV::M(
                m.iter()
                    .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            AV::L(l) => Some(AV::L(
                l.iter()
                    .map(|v| normalize(v).unwrap_or(AV::Null(true)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn round_trip(items: &[Item]) -> (Columns, Vec<Item>) {
        let mut shape = TableShape::default();
        items.iter().for_each(|i| shape.observe(i).unwrap());
        let columns = shape.resolve(NumberMode::Exact);
        let schema = arrow_schema(&columns);
        let batch = encode_batch(&columns, &schema, items).unwrap();
        (columns.clone(), decode_batch(&columns, &batch).unwrap())
    }

    #[test]
    fn every_type_round_trips_exactly() {
        let deep = (0..20).fold(AV::S("bottom".into()), |acc, i| {
            if i % 2 == 0 {
                AV::M([("d".to_string(), acc)].into_iter().collect())
            } else {
                AV::L(vec![acc, AV::Null(true)])
            }
        });
        let items = vec![
            item(vec![
                ("s", AV::S("".into())),
                ("n", AV::N("12345678901234567890123456789012345678".into())),
                (
                    "tiny",
                    AV::N("0.000000000000000000000000000000000001".into()),
                ),
                (
                    "huge",
                    AV::N("100000000000000000000000000000000000000".into()),
                ),
                ("b", AV::B(Blob::new(vec![0, 0, 255]))),
                ("bool", AV::Bool(false)),
                ("null", AV::Null(true)),
                ("ss", AV::Ss(vec!["a".into(), "b".into()])),
                ("ns", AV::Ns(vec!["1".into(), "-2.5".into()])),
                ("bs", AV::Bs(vec![Blob::new(vec![0u8])])),
                ("deep", deep),
                ("mixed", AV::S("x".into())),
                ("a.b c", AV::S("dotted".into())),
            ]),
            item(vec![
                ("n", AV::N("-1".into())),
                ("huge", AV::N("-1.5".into())),
                ("mixed", AV::Ns(vec!["3".into()])),
                ("sparse", AV::M(Default::default())),
                ("list", AV::L(vec![AV::N("1".into()), AV::S("two".into())])),
            ]),
            item(vec![]),
        ];
        let (columns, decoded) = round_trip(&items);
        assert_eq!(columns["mixed"], ColumnType::Json);
        assert_eq!(columns["huge"], ColumnType::N(NumberRepr::Text));
        assert_eq!(
            columns["n"],
            ColumnType::N(NumberRepr::Decimal { scale: 0 })
        );
        for (orig, got) in items.iter().zip(&decoded) {
            let want: Item = orig
                .iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
                .collect();
            assert_eq!(&want, got);
        }
    }

    #[test]
    fn file_encoded_with_an_earlier_schema_reencodes_to_the_final_one() {
        let first = vec![item(vec![("x", AV::N("1".into()))])];
        let later = vec![item(vec![
            ("x", AV::N("1.25".into())),
            ("y", AV::S("new".into())),
        ])];
        let (early_cols, early_items) = round_trip(&first);
        let mut shape = TableShape::default();
        first
            .iter()
            .chain(&later)
            .for_each(|i| shape.observe(i).unwrap());
        let final_cols = shape.resolve(NumberMode::Exact);
        assert_ne!(early_cols, final_cols);
        let schema = arrow_schema(&final_cols);
        let batch = encode_batch(&final_cols, &schema, &early_items).unwrap();
        assert_eq!(decode_batch(&final_cols, &batch).unwrap(), first);
    }

    #[test]
    fn json_fallback_keeps_binary_and_sets() {
        let v = AV::Bs(vec![Blob::new(vec![0, 1, 2])]);
        let text = json::to_json_string(&v, &mut AttrPath::default()).unwrap();
        assert_eq!(json::from_json_str(&text).unwrap(), v);
    }
}
