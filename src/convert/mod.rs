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
//!
//! Column names are the attribute names, verbatim (dots, spaces, unicode), at every level,
//! with one exception: Spark, Databricks and Delta compare column names case-insensitively and
//! refuse two that differ only in case. See [`column_names`] for the rule.

#[cfg(test)]
pub(crate) mod arbitrary;
pub mod decode;
pub mod encode;
pub mod json;
pub mod number;
pub mod rows;
pub mod shape;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

pub use decode::decode_batch;
pub use encode::{encode_batch, encode_rows};
pub use number::{NumberMode, NumberRepr};
pub use rows::Rows;
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

/// Field metadata key holding the attribute name of a column [`column_names`] renamed.
pub const ATTRIBUTE_NAME_KEY: &str = "ddbsnap.attribute";

/// Characters Delta Lake does not allow in column names (without column mapping, which older
/// readers cannot read), nor Spark and Databricks in a Delta table's schema.
pub const DELTA_FORBIDDEN: [char; 10] = [' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// The column names of attributes `names` (the fields of one struct level): each attribute
/// name verbatim, except
/// - each character Delta does not allow in a column name ([`DELTA_FORBIDDEN`]: space,
///   `,;{}()=`, newline and tab) becomes `_` (`order date` → `order_date`);
/// - names that then differ only in case, or are equal (`status` and `Status`; `a b` and
///   `a_b`), which Spark, Databricks and Delta take for one column: the first keeps its name,
///   each other one becomes `<name>__<k>` with the smallest k from 2 up that matches no other
///   column in any case. First means: names that needed no change first, then byte order
///   (`Status` before `status`; `a_b` before `a b`).
///
/// The rule depends only on the set of names, not on the order items arrived in, so every
/// snapshot of a table names its columns alike. It is reversible: a renamed column keeps its
/// attribute name in its field metadata ([`ATTRIBUTE_NAME_KEY`]), the manifest lists the
/// attribute names, and reading a snapshot back gives the attribute names.
pub fn column_names<'a>(names: &[&'a str]) -> Vec<Cow<'a, str>> {
    let columns = names
        .iter()
        .map(|&n| {
            if n.contains(DELTA_FORBIDDEN) {
                Cow::Owned(n.replace(DELTA_FORBIDDEN, "_"))
            } else {
                Cow::Borrowed(n)
            }
        })
        .collect();
    distinct_in_any_case(names, columns)
}

/// The column names of attributes `names` in a table that stores columns under physical names
/// (a Delta table with column mapping), where any character is allowed: each attribute name
/// verbatim, except names equal in any case, renamed as [`column_names`] says.
pub fn exact_column_names<'a>(names: &[&'a str]) -> Vec<Cow<'a, str>> {
    distinct_in_any_case(names, names.iter().map(|&n| Cow::Borrowed(n)).collect())
}

/// `columns` (the names of attributes `names`) with names equal in any case told apart (see
/// [`column_names`]).
fn distinct_in_any_case<'a>(
    names: &[&'a str],
    mut columns: Vec<Cow<'a, str>>,
) -> Vec<Cow<'a, str>> {
    let fold = |s: &str| s.to_lowercase();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, column) in columns.iter().enumerate() {
        groups.entry(fold(column)).or_default().push(i);
    }
    if groups.len() == names.len() {
        return columns;
    }
    let mut taken: HashSet<String> = groups.keys().cloned().collect();
    for members in groups.values_mut().filter(|m| m.len() > 1) {
        members.sort_by_key(|&i| (columns[i] != names[i], names[i]));
        for &i in &members[1..] {
            let renamed = (2u32..)
                .map(|k| format!("{}__{k}", columns[i]))
                .find(|c| !taken.contains(&fold(c)))
                .expect("some suffix is free");
            taken.insert(fold(&renamed));
            columns[i] = Cow::Owned(renamed);
        }
    }
    columns
}

pub(crate) fn struct_fields(fields: &Columns) -> Fields {
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    fields
        .iter()
        .zip(column_names(&names))
        .map(|((name, ct), column)| {
            let field = Field::new(column.as_ref(), data_type(ct), true);
            if column == name.as_str() {
                field
            } else {
                field.with_metadata(HashMap::from([(
                    ATTRIBUTE_NAME_KEY.to_owned(),
                    name.clone(),
                )]))
            }
        })
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

/// [`arrow_schema()`] with the columns of the key attributes `keys` non-nullable: every item has
/// its key (a data file's schema says so; [`encode_batch`] refuses an item without one).
pub fn arrow_schema_with_keys(columns: &Columns, keys: &[String]) -> SchemaRef {
    let fields: Fields = struct_fields(columns)
        .iter()
        .zip(columns.keys())
        .map(|(field, name)| {
            if keys.contains(name) {
                Arc::new(field.as_ref().clone().with_nullable(false))
            } else {
                Arc::clone(field)
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Check that `item` (`what` names it in the message) has each of `keys` as a string, number
/// or binary, the types a DynamoDB key attribute has: the key attributes given with `--key`
/// must be the table's.
pub(crate) fn check_key_values(item: &Item, keys: &[String], what: &str) -> crate::Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let fix = "give the table's key attributes, partition key first";
    for key in keys {
        match item.get(key) {
            Some(AV::S(_) | AV::N(_) | AV::B(_)) => {}
            Some(_) => {
                return Err(crate::Error::invalid(format!(
                    "--key {key}: {what} holds a value there that is not a string, number or \
                     binary, so it is no key attribute; {fix}"
                )));
            }
            None => {
                let mut names: Vec<&str> = item
                    .keys()
                    .map(String::as_str)
                    .filter(|n| !n.starts_with('_'))
                    .collect();
                names.sort_unstable();
                let more = if names.len() > 8 { ", ..." } else { "" };
                names.truncate(8);
                return Err(crate::Error::invalid(format!(
                    "--key {key}: {what} has no attribute '{key}' (it has {}{more}); {fix}",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(())
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

    /// `items` written to Parquet (in memory) with the inferred schema and read back.
    fn through_parquet(items: &[Item]) -> Vec<Item> {
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let mut shape = TableShape::with_keys([("pk", KeyKind::S)]);
        items.iter().for_each(|i| shape.observe(i).unwrap());
        let columns = shape.resolve(NumberMode::Exact);
        let schema = arrow_schema(&columns);
        let batch = encode_batch(&columns, &schema, items).unwrap();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
            .unwrap()
            .build()
            .unwrap();
        let mut back = Vec::new();
        for batch in reader {
            back.extend(decode_batch(&columns, &batch.unwrap()).unwrap());
        }
        back
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 128,
            ..Default::default()
        })]

        /// Thousands of random items (every type, nesting to 32, numbers across DynamoDB's
        /// range, binary, sets, empty strings, unicode and case-colliding names) come back
        /// from Parquet exactly, whatever schema (conflicts included) they infer together.
        #[test]
        fn random_items_round_trip_through_parquet(
            items in proptest::collection::vec(arbitrary::item(), 1..40)
        ) {
            let back = through_parquet(&items);
            proptest::prop_assert_eq!(back.len(), items.len());
            for (sent, got) in items.iter().zip(&back) {
                proptest::prop_assert_eq!(arbitrary::normalized(sent), arbitrary::normalized(got));
            }
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
    fn names_differing_only_in_case_or_with_delta_forbidden_characters_get_distinct_reversible_columns()
     {
        let names = [
            "status",
            "Status",
            "STATUS",
            "status__2",
            "a.b c=d",
            "ünï",
            "ÜNÏ",
        ];
        let columns = column_names(&names);
        assert_eq!(
            columns,
            [
                "status__4",
                "Status__3",
                "STATUS",
                "status__2",
                "a.b_c_d",
                "ünï__2",
                "ÜNÏ"
            ]
        );
        // Characters Delta does not allow become `_`; a name that needed no change keeps it.
        assert_eq!(
            column_names(&["a b", "a_b", "x(1)", "C=D", "A=B", "tab\there", "ok.dots"]),
            [
                "a_b__3", "a_b", "x_1_", "C_D", "A_B__2", "tab_here", "ok.dots"
            ]
        );
        // The same whatever order the attributes were first seen in.
        let mut reversed = names;
        reversed.reverse();
        let mut again = column_names(&reversed);
        again.reverse();
        assert_eq!(columns, again);
        let folded: HashSet<String> = columns.iter().map(|c| c.to_lowercase()).collect();
        assert_eq!(folded.len(), names.len());

        // Top level and inside maps: written under the column names, read back under the
        // attribute names.
        let nested = AV::M(
            [
                ("k".to_string(), AV::S("lower".into())),
                ("K".to_string(), AV::N("1".into())),
            ]
            .into_iter()
            .collect(),
        );
        let items = vec![
            item(vec![
                ("status", AV::S("a".into())),
                ("Status", AV::N("2".into())),
                ("m", nested.clone()),
            ]),
            item(vec![("STATUS", AV::Bool(true)), ("m", nested)]),
        ];
        let (columns, back) = round_trip(&items);
        assert_eq!(back, items);
        let schema = arrow_schema(&columns);
        let field = schema.field_with_name("status__3").unwrap();
        assert_eq!(field.metadata()[ATTRIBUTE_NAME_KEY], "status");
        let field = schema.field_with_name("Status__2").unwrap();
        assert_eq!(field.metadata()[ATTRIBUTE_NAME_KEY], "Status");
        let field = schema.field_with_name("STATUS").unwrap();
        assert!(field.metadata().is_empty());
        let DataType::Struct(children) = schema.field_with_name("m").unwrap().data_type() else {
            panic!("m is a struct");
        };
        let names: Vec<&str> = children.iter().map(|f| f.name().as_str()).collect();
        assert!(names.contains(&"K") && names.contains(&"k__2"), "{names:?}");
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
