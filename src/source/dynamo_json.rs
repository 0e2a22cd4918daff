//! The serde_json parser of DynamoDB JSON: Scan response bodies and export lines straight
//! into a [`Rows`] arena (no allocation per value; see [`crate::convert::rows`]). It is the
//! general parser: the fast path in `fast_json` takes the common shapes, and what it gives up
//! on comes here, which decides (and gives the error).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::convert::Item;
use crate::convert::Rows;
use crate::convert::rows::{Name, Span, Val};

/// The small fields of a Scan response.
#[derive(Debug, Default)]
pub(crate) struct ScanHead {
    /// `Count`.
    pub(crate) count: i64,
    /// `ScannedCount`.
    pub(crate) scanned_count: i64,
    /// `LastEvaluatedKey`.
    pub(crate) last_evaluated_key: Option<RawItem>,
    /// `ConsumedCapacity`.
    pub(crate) consumed_capacity: Option<Consumed>,
}

/// `ConsumedCapacity` of a response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Consumed {
    #[serde(default)]
    pub(crate) capacity_units: Option<f64>,
}

/// `DeserializeSeed` for a visitor that is its own seed: `$seed` takes what `$method` gives.
macro_rules! self_seed {
    ($seed:ident, $value:ty, $method:ident) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_> {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.$method(self)
            }
        }
    };
}

/// An item in DynamoDB JSON (a page's LastEvaluatedKey).
#[derive(Debug)]
pub(crate) struct RawItem(pub(crate) Item);

impl<'de> Deserialize<'de> for RawItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut rows = Rows::new();
        ItemSeed(&mut rows).deserialize(d)?;
        Ok(RawItem(rows.to_item(0)))
    }
}

/// Parses one item in DynamoDB JSON (`{"pk":{"S":"a"},...}`) into the [`Rows`].
pub(crate) struct ItemSeed<'r>(pub(crate) &'r mut Rows);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let rows = self.0;
        let mark = rows.map_mark();
        d.deserialize_map(MapVisitor(rows))?;
        rows.end_item(mark).map_err(de::Error::custom)
    }
}

/// The entries of a map (or item) into the rows' pending entries.
struct MapVisitor<'r>(&'r mut Rows);

impl<'de> Visitor<'de> for MapVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DynamoDB item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let rows = self.0;
        while let Some(name) = map.next_key_seed(NameSeed(rows))? {
            let value = map
                .next_value_seed(ValueSeed(rows))
                .map_err(|e| de::Error::custom(nest(&format!("'{}'", rows.name_text(name)), &e)))?;
            rows.push_entry(name, value);
        }
        Ok(())
    }
}

/// A JSON string into the rows' text (`expecting` names what it should have been).
struct TextSeed<'r>(&'r mut Rows, &'static str);

self_seed!(TextSeed, Span, deserialize_str);

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Span, E> {
        self.0.push_str(text).map_err(E::custom)
    }
}

/// An attribute name into the rows' names.
struct NameSeed<'r>(&'r mut Rows);

self_seed!(NameSeed, Name, deserialize_str);

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = Name;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
        self.0.push_name(name).map_err(E::custom)
    }
}

/// A string set (`S`), number set (`N`) or, as text still to decode, binary set (`B`) into
/// a list of the rows.
struct SetSeed<'r>(&'r mut Rows, fn(Span) -> Val);

self_seed!(SetSeed, Span, deserialize_seq);

impl<'de> Visitor<'de> for SetSeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Span, A::Error> {
        let SetSeed(rows, wrap) = self;
        let mark = rows.list_mark();
        while let Some(text) = seq.next_element_seed(TextSeed(rows, "a string"))? {
            rows.push_element(wrap(text));
        }
        rows.end_list(mark).map_err(de::Error::custom)
    }
}

/// The items of a Scan response (`"Items": [...]`) into the rows.
struct ItemsSeed<'r>(&'r mut Rows);

self_seed!(ItemsSeed, (), deserialize_seq);

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(ItemSeed(self.0))?.is_some() {}
        Ok(())
    }
}

/// A list (`L`) into a list of the rows; an error names the element's index.
struct ListSeed<'r>(&'r mut Rows);

self_seed!(ListSeed, Span, deserialize_seq);

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of DynamoDB values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Span, A::Error> {
        let rows = self.0;
        let mark = rows.list_mark();
        let mut index = 0;
        loop {
            let next = seq
                .next_element_seed(ValueSeed(rows))
                .map_err(|e| de::Error::custom(nest(&format!("[{index}]"), &e)))?;
            match next {
                Some(v) => rows.push_element(v),
                None => break,
            }
            index += 1;
        }
        rows.end_list(mark).map_err(de::Error::custom)
    }
}

/// The type tag of an attribute value (`"S"` in `{"S":"x"}`).
enum Tag {
    S,
    N,
    B,
    Bool,
    Null,
    SS,
    NS,
    BS,
    L,
    M,
    Unknown(String),
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, tag: &str) -> Result<Tag, E> {
                Ok(match tag {
                    "S" => Tag::S,
                    "N" => Tag::N,
                    "B" => Tag::B,
                    "BOOL" => Tag::Bool,
                    "NULL" => Tag::Null,
                    "SS" => Tag::SS,
                    "NS" => Tag::NS,
                    "BS" => Tag::BS,
                    "L" => Tag::L,
                    "M" => Tag::M,
                    other => Tag::Unknown(other.to_owned()),
                })
            }
        }
        d.deserialize_str(TagVisitor)
    }
}

/// One attribute value in DynamoDB JSON (`{"S":"x"}`) into the rows.
struct ValueSeed<'r>(&'r mut Rows);

self_seed!(ValueSeed, Val, deserialize_map);

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Val;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DynamoDB attribute value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let rows = self.0;
        let tag: Tag = map
            .next_key()?
            .ok_or_else(|| de::Error::custom("empty attribute value"))?;
        let text = |rows: &mut Rows, map: &mut A| map.next_value_seed(TextSeed(rows, "a string"));
        let v = match tag {
            Tag::S => Val::S(text(rows, &mut map)?),
            Tag::N => Val::N(text(rows, &mut map)?),
            Tag::B => {
                let text = text(rows, &mut map)?;
                Val::B(rows.decode_base64(text).map_err(de::Error::custom)?)
            }
            Tag::Bool => Val::Bool(map.next_value()?),
            Tag::Null => {
                // DynamoDB JSON has `"NULL": true`; any value means null.
                map.next_value::<IgnoredAny>()?;
                Val::Null
            }
            Tag::SS => Val::SS(map.next_value_seed(SetSeed(rows, Val::S))?),
            Tag::NS => Val::NS(map.next_value_seed(SetSeed(rows, Val::N))?),
            Tag::BS => {
                let texts = map.next_value_seed(SetSeed(rows, Val::S))?;
                Val::BS(rows.decode_base64_set(texts).map_err(de::Error::custom)?)
            }
            Tag::L => Val::L(map.next_value_seed(ListSeed(rows))?),
            Tag::M => {
                let mark = rows.map_mark();
                map.next_value_seed(MapSeed(rows))?;
                Val::M(rows.end_map(mark).map_err(de::Error::custom)?)
            }
            Tag::Unknown(other) => {
                UNKNOWN_TYPE.with(|f| f.set(true));
                return Err(de::Error::custom(format!("{UNKNOWN_MESSAGE} ('{other}')")));
            }
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "an attribute value has more than one type",
            ));
        }
        Ok(v)
    }
}

/// A map's entries (`"M": {...}`) into the rows' pending entries.
struct MapSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for MapSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(MapVisitor(self.0))
    }
}

/// Evaluate `$parse` with `$de`, a serde_json deserializer over the JSON text `$bytes`. Valid
/// UTF-8 is checked once for the whole text, so that serde_json need not check each string it
/// reads; text that is not UTF-8 goes to serde_json as bytes, for its error where it occurs.
macro_rules! with_json {
    ($bytes:expr, $de:ident => $parse:expr) => {
        match std::str::from_utf8($bytes) {
            Ok(text) => {
                let mut $de = serde_json::Deserializer::from_str(text);
                $parse
            }
            Err(_) => {
                let mut $de = serde_json::Deserializer::from_slice($bytes);
                $parse
            }
        }
    };
}

/// [`scan_page`] with serde_json only: the parser that decides what the fast path gives up on.
pub(super) fn serde_scan_page(
    body: &[u8],
    head: &mut ScanHead,
    rows: &mut Rows,
) -> Result<(), serde_json::Error> {
    struct Body<'a>(&'a mut ScanHead, &'a mut Rows);
    fn once<E: de::Error>(seen: &mut bool, field: &'static str) -> Result<(), E> {
        if std::mem::replace(seen, true) {
            return Err(E::duplicate_field(field));
        }
        Ok(())
    }
    impl<'de> Visitor<'de> for Body<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("struct ScanOutput")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let Body(head, rows) = self;
            let mut seen = [false; 5];
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match key.as_ref() {
                    "Items" => {
                        once(&mut seen[0], "Items")?;
                        map.next_value_seed(ItemsSeed(rows))?;
                    }
                    "Count" => {
                        once(&mut seen[1], "Count")?;
                        head.count = map.next_value()?;
                    }
                    "ScannedCount" => {
                        once(&mut seen[2], "ScannedCount")?;
                        head.scanned_count = map.next_value()?;
                    }
                    "LastEvaluatedKey" => {
                        once(&mut seen[3], "LastEvaluatedKey")?;
                        head.last_evaluated_key = map.next_value()?;
                    }
                    "ConsumedCapacity" => {
                        once(&mut seen[4], "ConsumedCapacity")?;
                        head.consumed_capacity = map.next_value()?;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    with_json!(body, de => {
        de.deserialize_map(Body(head, rows))?;
        de.end()
    })
}

pub(super) const UNKNOWN_MESSAGE: &str = "has a DynamoDB attribute type this version of ddbsnap does not \
     know; upgrade ddbsnap or exclude the attribute with a projection";

thread_local! {
    /// Set when parsing met a type tag it does not know (the error says where).
    pub(super) static UNKNOWN_TYPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Prefix an inner error with the attribute path part it happened under.
pub(super) fn nest(part: &str, inner: &dyn fmt::Display) -> String {
    let inner = inner.to_string();
    if inner.starts_with('\'') {
        format!("{part}.{inner}")
    } else if inner.starts_with('[') {
        format!("{part}{inner}")
    } else {
        format!("{part}: {inner}")
    }
}

/// Why the items of a page could not be parsed.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// A value has a type tag this version does not know: (attribute path, message).
    UnknownType(String, String),
    /// The body is not a valid Scan response.
    Malformed(serde_json::Error),
}

/// [`parse_full_line`] with serde_json only: the parser that decides what the fast path gives
/// up on.
pub(super) fn serde_full_line(line: &[u8], rows: &mut Rows) -> bool {
    struct Line<'r>(&'r mut Rows);
    impl<'de> Visitor<'de> for Line<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a full export line")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "Item" && !found {
                    found = map.next_value_seed(OptionalItem(self.0))?;
                } else if key == "Item" {
                    return Err(de::Error::duplicate_field("Item"));
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    struct OptionalItem<'r>(&'r mut Rows);
    impl<'de> DeserializeSeed<'de> for OptionalItem<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_option(self)
        }
    }
    impl<'de> Visitor<'de> for OptionalItem<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an item or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            ItemSeed(self.0).deserialize(d).map(|()| true)
        }
    }
    let before = rows.mark();
    let parsed = with_json!(line, de => de
        .deserialize_map(Line(&mut *rows))
        .and_then(|found| de.end().map(|()| found)));
    if !matches!(parsed, Ok(true)) {
        rows.rollback(before);
        UNKNOWN_TYPE.with(|f| f.set(false));
        return false;
    }
    true
}

/// Forget an unknown type tag met before (at the start of a parse).
pub(super) fn reset_unknown_type() {
    UNKNOWN_TYPE.with(|f| f.set(false));
}

/// Whether the parse since [`reset_unknown_type`] met a type tag it does not know (and forget
/// it).
pub(super) fn took_unknown_type() -> bool {
    UNKNOWN_TYPE.with(|f| f.replace(false))
}
