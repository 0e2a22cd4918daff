//! Schema inference: from every value seen to one column type per attribute.
//!
//! A [`Shape`] is the inference state of one attribute position (top-level attribute, map field
//! or list element). Observing values only ever widens it, along this lattice:
//!
//! ```text
//! Null  <  any kind  <  Json (conflicting kinds)
//! N: Int64 < Decimal128(38, s) < exact text   (decided by NumberStats)
//! M: fields are the union of all maps' fields; L: the element shape is the union of elements
//! ```
//!
//! [`Shape::resolve`] turns the state into a [`ColumnType`]: the schema actually written, stored
//! in every file's key-value metadata and in the manifest, and used to decode the files back.
//! Because inference is monotone, a file written with an earlier [`ColumnType`] can always be
//! re-encoded to the final one without loss (see `sink` for when that happens).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::number::{NumberMode, NumberRepr, NumberStats};
pub use super::rows::Item;
use super::rows::{Entry, Name, Rows, Val};
use crate::error::Result;

/// The shapes of the fields of a map (or the attributes of an item), by name, in column order.
/// Hashed with foldhash: every attribute of every item is looked up here.
pub type FieldShapes = IndexMap<String, Shape, foldhash::fast::RandomState>;

/// Maps with more distinct field names than this become a DynamoDB-JSON text column instead of
/// a struct with thousands of columns (maps keyed by ids, not by a fixed set of names).
pub const MAX_STRUCT_FIELDS: usize = 1000;

/// Inference state of one attribute position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Shape {
    /// Only NULL (or nothing) seen so far.
    Null,
    /// String.
    S,
    /// Number.
    N(NumberStats),
    /// Binary.
    B,
    /// Boolean.
    Bool,
    /// String set.
    SS,
    /// Number set.
    NS(NumberStats),
    /// Binary set.
    BS,
    /// List; the element shape is the union of all elements.
    L {
        /// Union of all elements.
        element: Box<Shape>,
    },
    /// Map; fields in first-seen order (sorted among names first seen together).
    M {
        /// Field shapes in first-seen order.
        fields: FieldShapes,
    },
    /// Conflicting kinds: stored as DynamoDB JSON text.
    Json,
}

impl Shape {
    /// Widen this shape so that it also covers `value` (held by `rows`).
    pub(crate) fn observe(&mut self, value: Val, rows: &Rows) {
        match (&mut *self, value) {
            (_, Val::Null) | (Shape::Json, _) => {}
            (Shape::S, Val::S(_)) | (Shape::B, Val::B(_)) | (Shape::Bool, Val::Bool(_)) => {}
            (Shape::SS, Val::SS(_)) | (Shape::BS, Val::BS(_)) => {}
            (Shape::N(stats), Val::N(n)) => stats.observe(rows.text(n)),
            (Shape::NS(stats), Val::NS(ns)) => {
                for n in rows.list(ns) {
                    if let Val::N(n) = n {
                        stats.observe(rows.text(*n));
                    }
                }
            }
            (Shape::L { element }, Val::L(list)) => {
                for v in rows.list(list) {
                    element.observe(*v, rows);
                }
            }
            (Shape::M { fields }, Val::M(map)) => {
                observe_fields(fields, rows.map(map), rows);
                if fields.len() > MAX_STRUCT_FIELDS {
                    *self = Shape::Json;
                }
            }
            (Shape::Null, v) => {
                *self = match v {
                    Val::S(_) => Shape::S,
                    Val::N(_) => Shape::N(NumberStats::default()),
                    Val::B(_) => Shape::B,
                    Val::Bool(_) => Shape::Bool,
                    Val::SS(_) => Shape::SS,
                    Val::NS(_) => Shape::NS(NumberStats::default()),
                    Val::BS(_) => Shape::BS,
                    Val::L(_) => Shape::L {
                        element: Box::new(Shape::Null),
                    },
                    Val::M(_) => Shape::M {
                        fields: FieldShapes::default(),
                    },
                    Val::Null => unreachable!("matched above"),
                };
                self.observe(value, rows);
            }
            _ => *self = Shape::Json,
        }
    }

    /// Widen this shape so that it also covers every value `other` covers: the shape that
    /// observing both shapes' values would have given.
    pub(crate) fn merge(&mut self, other: &Shape) {
        match (&mut *self, other) {
            (_, Shape::Null) | (Shape::Json, _) => {}
            (Shape::Null, o) => *self = o.clone(),
            (Shape::S, Shape::S)
            | (Shape::B, Shape::B)
            | (Shape::Bool, Shape::Bool)
            | (Shape::SS, Shape::SS)
            | (Shape::BS, Shape::BS) => {}
            (Shape::N(a), Shape::N(b)) | (Shape::NS(a), Shape::NS(b)) => a.merge(b),
            (Shape::L { element }, Shape::L { element: o }) => element.merge(o),
            (Shape::M { fields }, Shape::M { fields: o }) => {
                merge_fields(fields, o);
                if fields.len() > MAX_STRUCT_FIELDS {
                    *self = Shape::Json;
                }
            }
            _ => *self = Shape::Json,
        }
    }

    /// The column type that holds every value observed so far.
    pub fn resolve(&self, mode: NumberMode) -> ColumnType {
        match self {
            Shape::Null => ColumnType::Null,
            Shape::S => ColumnType::S,
            Shape::N(stats) => ColumnType::N(stats.repr(mode)),
            Shape::B => ColumnType::B,
            Shape::Bool => ColumnType::Bool,
            Shape::SS => ColumnType::SS,
            Shape::NS(stats) => ColumnType::NS(stats.repr(mode)),
            Shape::BS => ColumnType::BS,
            Shape::L { element } => ColumnType::L {
                element: Box::new(element.resolve(mode)),
            },
            Shape::M { fields } if fields.is_empty() => ColumnType::Json,
            Shape::M { fields } => ColumnType::M {
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.resolve(mode)))
                    .collect(),
            },
            Shape::Json => ColumnType::Json,
        }
    }
}

impl Shape {
    /// A shape that resolves to `column` (in the mode it was resolved in) and covers every
    /// value a column of that type can hold.
    pub(crate) fn covering(column: &ColumnType) -> Shape {
        match column {
            ColumnType::Null => Shape::Null,
            ColumnType::S => Shape::S,
            ColumnType::N(repr) => Shape::N(NumberStats::covering(*repr)),
            ColumnType::B => Shape::B,
            ColumnType::Bool => Shape::Bool,
            ColumnType::SS => Shape::SS,
            ColumnType::NS(repr) => Shape::NS(NumberStats::covering(*repr)),
            ColumnType::BS => Shape::BS,
            ColumnType::L { element } => Shape::L {
                element: Box::new(Shape::covering(element)),
            },
            ColumnType::M { fields } => Shape::M {
                fields: fields
                    .iter()
                    .map(|(name, f)| (name.clone(), Shape::covering(f)))
                    .collect(),
            },
            ColumnType::Json => Shape::Json,
        }
    }
}

/// Widen `fields` with the entries of one map (or item). Names seen for the first time are
/// added in sorted order, so the column order does not depend on the order of the entries.
fn observe_fields(fields: &mut FieldShapes, entries: &[Entry], rows: &Rows) {
    let mut new: Vec<&Entry> = Vec::new();
    for e in entries {
        match fields.get_mut(rows.name(e)) {
            Some(f) => f.observe(e.value, rows),
            None => new.push(e),
        }
    }
    add_fields(fields, new, rows);
}

/// Add the fields of `new`, entries whose names `fields` does not have yet, sorted by name;
/// return each one's [`Name`] and index in `fields`.
fn add_fields(fields: &mut FieldShapes, mut new: Vec<&Entry>, rows: &Rows) -> Vec<(Name, usize)> {
    new.sort_unstable_by(|a, b| rows.name(a).cmp(rows.name(b)));
    new.into_iter()
        .map(|e| {
            let mut f = Shape::Null;
            f.observe(e.value, rows);
            (e.name, fields.insert_full(rows.name(e).to_owned(), f).0)
        })
        .collect()
}

/// Widen `fields` with `other`'s: fields both have are merged, the others appended in
/// `other`'s order.
fn merge_fields(fields: &mut FieldShapes, other: &FieldShapes) {
    for (name, shape) in other {
        match fields.get_mut(name) {
            Some(f) => f.merge(shape),
            None => {
                fields.insert(name.clone(), shape.clone());
            }
        }
    }
}

/// The stored type of one attribute position: what a column holds in the Parquet files.
///
/// Serialized into every file's key-value metadata (`ddbsnap.columns`) and the manifest, so the
/// original DynamoDB types survive the trip (a `List<Utf8>` may be an `SS` or an `L` of `S`).
/// The `type` names are DynamoDB's own (`S`, `N`, `B`, `BOOL`, `NULL`, `SS`, `NS`, `BS`, `L`,
/// `M`), and `JSON` for the DynamoDB JSON fallback. Earlier snapshots and checkpoints named
/// three of them `Bool`, `Null` and `Json`; those are still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ColumnType {
    /// Only NULLs: an all-null Utf8 column.
    #[serde(rename = "NULL", alias = "Null")]
    Null,
    /// String → Utf8.
    S,
    /// Number → Int64, Decimal128(38, s), Utf8 text or (opt-in) Float64.
    N(NumberRepr),
    /// Binary → Binary.
    B,
    /// Boolean → Boolean.
    #[serde(rename = "BOOL", alias = "Bool")]
    Bool,
    /// String set → `List<Utf8>`.
    SS,
    /// Number set → `List<number>`.
    NS(NumberRepr),
    /// Binary set → `List<Binary>`.
    BS,
    /// List → `List<element>`.
    L {
        /// Element type.
        element: Box<ColumnType>,
    },
    /// Map → Struct with one nullable field per name.
    M {
        /// Field types, in column order.
        fields: IndexMap<String, ColumnType>,
    },
    /// Conflicting kinds, empty maps or very wide maps: Utf8 holding DynamoDB JSON
    /// (`{"S":"x"}`, `{"N":"1"}`, binary as base64).
    #[serde(rename = "JSON", alias = "Json")]
    Json,
}

/// The inferred schema of a whole table: one [`Shape`] per top-level attribute, key attributes
/// first, others in first-seen order (sorted among names first seen in the same item).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableShape {
    columns: FieldShapes,
}

/// The resolved schema: one [`ColumnType`] per top-level attribute, in column order.
pub type Columns = IndexMap<String, ColumnType>;

impl TableShape {
    /// A shape that starts with the given key attributes (so they come first and exist even
    /// for an empty table).
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = (&'a str, KeyKind)>) -> Self {
        let columns = keys
            .into_iter()
            .map(|(name, kind)| {
                let shape = match kind {
                    KeyKind::S => Shape::S,
                    KeyKind::N => Shape::N(NumberStats::default()),
                    KeyKind::B => Shape::B,
                };
                (name.to_owned(), shape)
            })
            .collect();
        TableShape { columns }
    }

    /// A shape whose first columns are `names`, typed by the first values seen (key attributes
    /// whose types are not declared, as in an export).
    pub fn with_key_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        TableShape {
            columns: names
                .into_iter()
                .map(|n| (n.to_owned(), Shape::Null))
                .collect(),
        }
    }

    /// Widen the shape to cover every attribute of `item`.
    pub fn observe(&mut self, item: &Item) -> Result<()> {
        self.observe_rows(&Rows::from_items(std::slice::from_ref(item))?);
        Ok(())
    }

    /// The shape of the items of `rows`.
    pub fn of_rows(rows: &Rows) -> Self {
        let mut shape = TableShape::default();
        shape.observe_rows(rows);
        shape
    }

    /// Widen the shape to cover every attribute of every item of `rows`.
    pub fn observe_rows(&mut self, rows: &Rows) {
        // Each name's column, looked up once per page rather than once per entry.
        let mut columns: Vec<Option<usize>> = rows
            .names()
            .map(|name| self.columns.get_index_of(name))
            .collect();
        for item in rows.items() {
            let mut new = Vec::new();
            for e in item {
                match columns[e.name.index()] {
                    Some(i) => self.columns[i].observe(e.value, rows),
                    None => new.push(e),
                }
            }
            if !new.is_empty() {
                for (name, i) in add_fields(&mut self.columns, new, rows) {
                    columns[name.index()] = Some(i);
                }
            }
        }
    }

    /// The column types that hold every item observed so far.
    pub fn resolve(&self, mode: NumberMode) -> Columns {
        self.columns
            .iter()
            .map(|(k, v)| (k.clone(), v.resolve(mode)))
            .collect()
    }

    /// A shape that resolves to `columns` (see [`Shape::covering`]).
    pub(crate) fn covering(columns: &Columns) -> TableShape {
        TableShape {
            columns: columns
                .iter()
                .map(|(name, c)| (name.clone(), Shape::covering(c)))
                .collect(),
        }
    }

    /// Widen the shape to cover every item `other` has observed too.
    pub fn merge(&mut self, other: &TableShape) {
        merge_fields(&mut self.columns, &other.columns);
    }

    /// The shape without the top-level attributes `names` (a change log's own columns).
    pub fn without(mut self, names: &[&str]) -> TableShape {
        self.columns.retain(|k, _| !names.contains(&k.as_str()));
        self
    }

    /// True when the top-level attribute `name` has been seen.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }

    /// Number of top-level attributes seen.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when no attribute has been seen.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The scalar type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    /// String key.
    S,
    /// Number key.
    N,
    /// Binary key.
    B,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_dynamodbs_and_the_old_names_still_read() {
        let columns: Columns = [
            ("b", ColumnType::Bool),
            ("n", ColumnType::Null),
            ("j", ColumnType::Json),
            ("s", ColumnType::SS),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let text = serde_json::to_string(&columns).unwrap();
        assert_eq!(
            text,
            r#"{"b":{"type":"BOOL"},"n":{"type":"NULL"},"j":{"type":"JSON"},"s":{"type":"SS"}}"#
        );
        let old =
            r#"{"b":{"type":"Bool"},"n":{"type":"Null"},"j":{"type":"Json"},"s":{"type":"SS"}}"#;
        assert_eq!(serde_json::from_str::<Columns>(old).unwrap(), columns);
    }

    #[test]
    fn a_covering_shape_resolves_to_its_columns_and_widens_like_them() {
        use crate::convert::NumberRepr as R;
        let columns: Columns = serde_json::from_str(
            r#"{"pk":{"type":"S"},"i":{"type":"N","as":"int64"},
                "d":{"type":"N","as":"decimal","scale":3},"t":{"type":"N","as":"text"},
                "l":{"type":"L","element":{"type":"NS","as":"decimal","scale":1}},
                "m":{"type":"M","fields":{"x":{"type":"BOOL"},"y":{"type":"NULL"}}},
                "j":{"type":"JSON"},"b":{"type":"BS"}}"#,
        )
        .unwrap();
        let shape = TableShape::covering(&columns);
        assert_eq!(shape.resolve(NumberMode::Exact), columns);
        // An Int64 column met by a run whose numbers have 2 decimals: Decimal128(38, 2);
        // one decimal scale met by another: the larger, while 38 digits hold both.
        let mut run = TableShape::default();
        let rows = Rows::from_items(&[[
            ("i".to_owned(), AV::N("1.25".into())),
            ("d".to_owned(), AV::N("7.5".into())),
        ]
        .into_iter()
        .collect()])
        .unwrap();
        run.observe_rows(&rows);
        let mut widened = shape.clone();
        widened.merge(&run);
        let resolved = widened.resolve(NumberMode::Exact);
        assert_eq!(resolved["i"], ColumnType::N(R::Decimal { scale: 2 }));
        assert_eq!(resolved["d"], ColumnType::N(R::Decimal { scale: 3 }));
        assert_eq!(resolved.len(), columns.len());
    }

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue as AV;

    /// Widen `shape` by one value.
    fn observe(shape: &mut Shape, value: &AV) {
        let rows = Rows::from_items(&[[("v".to_owned(), value.clone())].into()]).unwrap();
        shape.observe(rows.item(0)[0].value, &rows);
    }

    fn infer(values: &[AV]) -> ColumnType {
        let mut s = Shape::Null;
        for v in values {
            observe(&mut s, v);
        }
        s.resolve(NumberMode::Exact)
    }

    fn map(entries: &[(&str, AV)]) -> AV {
        AV::M(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn every_kind_resolves() {
        let n = |s: &str| AV::N(s.into());
        let cases: Vec<(Vec<AV>, ColumnType)> = vec![
            (vec![], ColumnType::Null),
            (vec![AV::Null(true)], ColumnType::Null),
            (vec![AV::S("a".into()), AV::Null(true)], ColumnType::S),
            (vec![n("1"), n("-2")], ColumnType::N(NumberRepr::Int64)),
            (
                vec![n("1"), n("2.5")],
                ColumnType::N(NumberRepr::Decimal { scale: 1 }),
            ),
            (vec![n("1E+38")], ColumnType::N(NumberRepr::Text)),
            (vec![AV::B(Blob::new(vec![0u8]))], ColumnType::B),
            (vec![AV::Bool(true)], ColumnType::Bool),
            (vec![AV::Ss(vec!["a".into()])], ColumnType::SS),
            (
                vec![AV::Ns(vec!["1".into(), "0.25".into()])],
                ColumnType::NS(NumberRepr::Decimal { scale: 2 }),
            ),
            (vec![AV::Bs(vec![Blob::new(vec![1u8])])], ColumnType::BS),
            (
                vec![
                    AV::L(vec![]),
                    AV::L(vec![AV::S("x".into()), AV::Null(true)]),
                ],
                ColumnType::L {
                    element: Box::new(ColumnType::S),
                },
            ),
            (
                vec![AV::L(vec![AV::S("x".into()), AV::N("1".into())])],
                ColumnType::L {
                    element: Box::new(ColumnType::Json),
                },
            ),
            (vec![map(&[])], ColumnType::Json),
            (vec![AV::S("a".into()), n("1")], ColumnType::Json),
            (
                vec![AV::Ss(vec!["a".into()]), AV::L(vec![])],
                ColumnType::Json,
            ),
        ];
        for (values, expected) in cases {
            assert_eq!(infer(&values), expected, "{values:?}");
        }
    }

    #[test]
    fn maps_union_their_fields_in_first_seen_order() {
        let got = infer(&[
            map(&[("a", AV::S("x".into()))]),
            map(&[("b", AV::Bool(true)), ("a", AV::Null(true))]),
        ]);
        let expected = ColumnType::M {
            fields: [
                ("a".to_string(), ColumnType::S),
                ("b".to_string(), ColumnType::Bool),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn new_attributes_are_added_in_sorted_order() {
        let mut t = TableShape::with_keys([("pk", KeyKind::S)]);
        let item: Item = ["z", "a", "pk", "m"]
            .iter()
            .map(|k| (k.to_string(), AV::Bool(true)))
            .collect();
        t.observe(&item).unwrap();
        let names: Vec<String> = t.resolve(NumberMode::Exact).keys().cloned().collect();
        assert_eq!(names, ["pk", "a", "m", "z"]);
    }

    #[test]
    fn merging_shapes_equals_observing_both() {
        let n = |s: &str| AV::N(s.into());
        let values = vec![
            AV::S("a".into()),
            n("1"),
            n("-12.75"),
            n("1E+38"),
            n("99999999999999999999"),
            AV::Bool(true),
            AV::Null(true),
            AV::B(Blob::new(vec![1u8])),
            AV::Ss(vec!["a".into()]),
            AV::Ns(vec!["2".into()]),
            AV::Ns(vec!["0.5".into()]),
            AV::L(vec![n("1"), AV::S("x".into())]),
            AV::L(vec![n("3")]),
            map(&[("a", n("1")), ("b", AV::S("x".into()))]),
            map(&[("c", AV::Bool(false)), ("a", n("2.5"))]),
            map(&[]),
        ];
        for a in &values {
            for b in &values {
                for c in &values {
                    let mut both = Shape::Null;
                    for v in [a, b, c] {
                        observe(&mut both, v);
                    }
                    let mut left = Shape::Null;
                    observe(&mut left, a);
                    let mut right = Shape::Null;
                    observe(&mut right, b);
                    observe(&mut right, c);
                    left.merge(&right);
                    for mode in [NumberMode::Exact, NumberMode::Float64] {
                        assert_eq!(
                            left.resolve(mode),
                            both.resolve(mode),
                            "{a:?} then {b:?}, {c:?}"
                        );
                    }
                }
            }
        }
        let mut t = TableShape::with_keys([("pk", KeyKind::S)]);
        let mut other = TableShape::with_key_names(["pk", "_op"]);
        let item: Item = [("pk".to_string(), AV::S("k".into())), ("x".into(), n("1"))]
            .into_iter()
            .collect();
        other.observe(&item).unwrap();
        t.merge(&other.without(&["_op"]));
        let names: Vec<String> = t.resolve(NumberMode::Exact).keys().cloned().collect();
        assert_eq!(names, ["pk", "x"]);
    }

    #[test]
    fn very_wide_maps_become_json() {
        let wide = AV::M(
            (0..=MAX_STRUCT_FIELDS)
                .map(|i| (format!("k{i}"), AV::Bool(true)))
                .collect(),
        );
        assert_eq!(infer(&[wide]), ColumnType::Json);
    }
}
