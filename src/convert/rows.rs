//! [`Rows`]: a page of DynamoDB items in one flat arena, the form items travel in from the
//! parsers to the encoder.
//!
//! An item as the SDK returns it is a `HashMap<String, AttributeValue>`: one allocation per
//! attribute name, per string, per list and per map, and a hash of every name on every lookup.
//! At a few microseconds per item that was most of a snapshot's CPU. [`Rows`] holds the same
//! values in four vectors instead: the text of every string and number in one buffer, the bytes
//! of every binary in another, every value in a third (a `Val` is a small copyable tag with a
//! span into one of the others) and every map entry in a fourth. Lists, sets and maps are spans
//! of contiguous values or entries, so a page costs a handful of allocations, whatever its size.
//!
//! Attribute names are held once each: an entry refers to its name by a `Name`, an index
//! into the rows' names. A page of items repeats the same few names on every item, so this
//! copies each name once per page, and lets the schema inference and the encoder look each
//! name up once per page instead of once per entry. A name met again is found by comparing it
//! with the name that followed the previous one last time, and hashed only when that misses.
//!
//! A map (or item) holds each name once: when a parser meets a name twice, the last value wins,
//! as it does in a `HashMap`.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use indexmap::IndexSet;

use crate::error::{AttrPath, Error, Result};
use crate::spare::Spares;

/// A DynamoDB item as the SDK returns it.
pub type Item = std::collections::HashMap<String, AV>;

pub(crate) fn unknown_type(_value: &AV, path: &AttrPath) -> Error {
    Error::unrepresentable(
        path,
        "has a DynamoDB attribute type this version of ddbsnap does not know; \
         upgrade ddbsnap or exclude the attribute with a projection",
    )
}

/// A range of one of the arena's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }

    /// Number of elements.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }
}

/// One attribute value: its type and where its contents are in the [`Rows`] that hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    /// NULL.
    Null,
    /// BOOL.
    Bool(bool),
    /// S: a span of the text.
    S(Span),
    /// N: a span of the text (the number as DynamoDB sent it).
    N(Span),
    /// B: a span of the bytes.
    B(Span),
    /// SS: a span of the values, each an `S`.
    SS(Span),
    /// NS: a span of the values, each an `N`.
    NS(Span),
    /// BS: a span of the values, each a `B`.
    BS(Span),
    /// L: a span of the values.
    L(Span),
    /// M: a span of the entries.
    M(Span),
}

/// An attribute name of a [`Rows`]: which of its distinct names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Name(u32);

impl Name {
    /// The name's position among the rows' names (see [`Rows::names`]).
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// One attribute of an item or map: its name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: Name,
    pub(crate) value: Val,
}

/// The lengths of a [`Rows`]' vectors at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowsMark([usize; 7]);

/// Items in one flat arena (see the module docs).
#[derive(Debug, Default)]
pub struct Rows {
    text: String,
    bytes: Vec<u8>,
    values: Vec<Val>,
    entries: Vec<Entry>,
    /// Each item: a span of the entries.
    items: Vec<Span>,
    /// Every distinct attribute name, each once, in first-seen order (a [`Name`] is an index).
    names: IndexSet<Box<str>, foldhash::fast::RandomState>,
    /// For each name, the name pushed after it last time; and the last name pushed. Items of
    /// a table mostly repeat their names in one order, so the next name is usually the one that
    /// followed the last, and comparing it costs less than hashing.
    following: Vec<u32>,
    last_name: Option<u32>,
    /// Values and entries of the lists and maps being built (a list's elements are only
    /// contiguous once the nested lists inside it are complete).
    pending_values: Vec<Val>,
    pending_entries: Vec<Entry>,
}

fn span(start: usize, end: usize) -> Result<Span> {
    match (u32::try_from(start), u32::try_from(end - start)) {
        (Ok(start), Ok(len)) if start.checked_add(len).is_some() => Ok(Span { start, len }),
        _ => Err(Error::Internal(
            "more than 4 GiB of values in one page of items".into(),
        )),
    }
}

/// Arenas of written pages kept for the pages being read (see [`crate::spare`]): about as many
/// as are in flight between the parsers and the conversion lanes at once.
const SPARE_ROWS: usize = 4;

/// An arena holding more than this (a page of unusually large items) is freed, not kept.
const SPARE_ROWS_BYTES: usize = 8 << 20;

static SPARE: Spares<Rows> = Spares::new(SPARE_ROWS);

impl Rows {
    /// No items.
    pub fn new() -> Self {
        Rows::default()
    }

    /// No items, in the arena of a page already written when one is spare (see
    /// [`Rows::recycle`]).
    pub(crate) fn spare() -> Option<Self> {
        SPARE.take()
    }

    /// Done with these items: keep their arena for a page to come, unless enough are kept or
    /// it is larger than pages usually need.
    pub(crate) fn recycle(mut self) {
        if self.capacity_bytes() <= SPARE_ROWS_BYTES {
            self.clear();
            SPARE.keep(self);
        }
    }

    /// The memory the arena holds, whatever its length.
    fn capacity_bytes(&self) -> usize {
        use std::mem::size_of;
        self.text.capacity()
            + self.bytes.capacity()
            + (self.values.capacity() + self.pending_values.capacity()) * size_of::<Val>()
            + (self.entries.capacity() + self.pending_entries.capacity()) * size_of::<Entry>()
            + self.items.capacity() * size_of::<Span>()
            + self.following.capacity() * size_of::<u32>()
    }

    /// Forget every item, keeping the memory.
    fn clear(&mut self) {
        self.text.clear();
        self.bytes.clear();
        self.values.clear();
        self.entries.clear();
        self.items.clear();
        self.names.clear();
        self.following.clear();
        self.last_name = None;
        self.pending_values.clear();
        self.pending_entries.clear();
    }

    /// No items, with room for the text of `json_len` bytes of DynamoDB JSON (which holds less).
    pub(crate) fn for_json(json_len: usize) -> Self {
        let mut rows = Rows::spare().unwrap_or_default();
        rows.text.reserve(json_len);
        rows
    }

    /// No items, with room for as many values as `like` holds (the next page of a source is
    /// usually of the size of the last: this saves growing every buffer from empty again).
    pub fn with_capacity_of(like: &Rows) -> Self {
        Rows {
            text: String::with_capacity(like.text.len()),
            bytes: Vec::with_capacity(like.bytes.len()),
            values: Vec::with_capacity(like.values.len()),
            entries: Vec::with_capacity(like.entries.len()),
            items: Vec::with_capacity(like.items.len()),
            ..Rows::default()
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items of `items`, in order.
    pub fn from_items(items: &[Item]) -> Result<Self> {
        let mut rows = Rows::new();
        for item in items {
            rows.push_item(item)?;
        }
        Ok(rows)
    }

    /// Append `item`. An attribute type this version does not know is an error naming it,
    /// and leaves the rows as they were.
    pub fn push_item(&mut self, item: &Item) -> Result<()> {
        let before = self.mark();
        let mark = self.pending_entries.len();
        let pushed = self
            .push_map_entries(item, &mut AttrPath::default())
            .and_then(|()| self.end_item(mark));
        if pushed.is_err() {
            self.rollback(before);
        }
        pushed
    }

    /// Where the arena ends now, to [`Self::rollback`] to.
    pub(crate) fn mark(&self) -> RowsMark {
        RowsMark([
            self.text.len(),
            self.bytes.len(),
            self.values.len(),
            self.entries.len(),
            self.items.len(),
            self.pending_values.len(),
            self.pending_entries.len(),
        ])
    }

    /// Forget everything appended since `mark` (an item that failed to parse).
    pub(crate) fn rollback(&mut self, mark: RowsMark) {
        let [
            text,
            bytes,
            values,
            entries,
            items,
            pending_values,
            pending_entries,
        ] = mark.0;
        self.text.truncate(text);
        self.bytes.truncate(bytes);
        self.values.truncate(values);
        self.entries.truncate(entries);
        self.items.truncate(items);
        self.pending_values.truncate(pending_values);
        self.pending_entries.truncate(pending_entries);
    }

    fn push_map_entries(&mut self, map: &HashMap<String, AV>, path: &mut AttrPath) -> Result<()> {
        for (name, value) in map {
            path.push_field(name);
            let value = self.push_value(value, path);
            path.pop();
            let name = self.push_name(name)?;
            self.pending_entries.push(Entry {
                name,
                value: value?,
            });
        }
        Ok(())
    }

    /// A string or number set: each text as a value made by `wrap`.
    fn push_texts(&mut self, set: &[String], wrap: fn(Span) -> Val) -> Result<Span> {
        let mark = self.pending_values.len();
        for text in set {
            let text = self.push_str(text)?;
            self.pending_values.push(wrap(text));
        }
        self.end_list(mark)
    }

    fn push_value(&mut self, value: &AV, path: &mut AttrPath) -> Result<Val> {
        Ok(match value {
            AV::Null(_) => Val::Null,
            AV::Bool(b) => Val::Bool(*b),
            AV::S(s) => Val::S(self.push_str(s)?),
            AV::N(n) => Val::N(self.push_str(n)?),
            AV::B(b) => Val::B(self.push_bytes(b.as_ref())?),
            AV::Ss(set) => Val::SS(self.push_texts(set, Val::S)?),
            AV::Ns(set) => Val::NS(self.push_texts(set, Val::N)?),
            AV::Bs(set) => {
                let mark = self.pending_values.len();
                for b in set {
                    let b = self.push_bytes(b.as_ref())?;
                    self.pending_values.push(Val::B(b));
                }
                Val::BS(self.end_list(mark)?)
            }
            AV::L(list) => {
                let mark = self.pending_values.len();
                for (i, v) in list.iter().enumerate() {
                    path.push_index(i);
                    let v = self.push_value(v, path);
                    path.pop();
                    self.pending_values.push(v?);
                }
                Val::L(self.end_list(mark)?)
            }
            AV::M(map) => {
                let mark = self.pending_entries.len();
                self.push_map_entries(map, path)?;
                Val::M(self.end_map(mark)?)
            }
            other => return Err(unknown_type(other, path)),
        })
    }

    /// Append `text` to the text buffer.
    pub(crate) fn push_str(&mut self, text: &str) -> Result<Span> {
        let start = self.text.len();
        self.text.push_str(text);
        span(start, self.text.len())
    }

    /// The [`Name`] of the attribute name `name` (added to the names the first time).
    pub(crate) fn push_name(&mut self, name: &str) -> Result<Name> {
        let predicted = self
            .last_name
            .and_then(|last| self.following.get(last as usize))
            .map(|&next| next as usize)
            .filter(|&next| self.names.get_index(next).is_some_and(|n| **n == *name));
        let index = match predicted.or_else(|| self.names.get_index_of(name)) {
            Some(index) => index,
            None => {
                let index = self.names.insert_full(name.into()).0;
                self.following.push(u32::MAX);
                index
            }
        };
        let index = u32::try_from(index).map_err(|_| {
            Error::Internal("more than 4 billion attribute names in one page".into())
        })?;
        if let Some(last) = self.last_name {
            self.following[last as usize] = index;
        }
        self.last_name = Some(index);
        Ok(Name(index))
    }

    /// The size of the items' strings, numbers and binaries.
    pub(crate) fn data_len(&self) -> usize {
        self.text.len() + self.bytes.len()
    }

    /// Where the text ends now: the start of a string appended in pieces
    /// ([`Self::append_text`], then [`Self::text_since`]).
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Append a piece of a string to the text.
    pub(crate) fn append_text(&mut self, piece: &str) {
        self.text.push_str(piece);
    }

    /// The span of the text appended since `start` (from [`Self::text_len`]).
    pub(crate) fn text_since(&self, start: usize) -> Result<Span> {
        span(start, self.text.len())
    }

    /// Append `bytes` to the bytes buffer.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<Span> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        span(start, self.bytes.len())
    }

    /// Decode the base64 text `text` (the text pushed last) into the bytes, and drop the
    /// text. The error is the message a parser reports.
    pub(crate) fn decode_base64(&mut self, text: Span) -> std::result::Result<Span, String> {
        let start = self.bytes.len();
        let decoded = BASE64.decode_vec(&self.text[text.range()], &mut self.bytes);
        self.text.truncate(text.start as usize);
        if let Err(e) = decoded {
            self.bytes.truncate(start);
            return Err(format!("invalid base64 in B: {e}"));
        }
        span(start, self.bytes.len()).map_err(|e| e.to_string())
    }

    /// Decode a set of base64 texts (`S` values: the list and the texts pushed last) into a
    /// binary set, and drop the texts.
    pub(crate) fn decode_base64_set(&mut self, set: Span) -> std::result::Result<Span, String> {
        let mut first_text = None;
        for i in set.range() {
            let Val::S(text) = self.values[i] else {
                return Err("a binary set element is not text".into());
            };
            first_text.get_or_insert(text.start);
            let start = self.bytes.len();
            BASE64
                .decode_vec(&self.text[text.range()], &mut self.bytes)
                .map_err(|e| format!("invalid base64 in B: {e}"))?;
            self.values[i] = Val::B(span(start, self.bytes.len()).map_err(|e| e.to_string())?);
        }
        if let Some(start) = first_text {
            self.text.truncate(start as usize);
        }
        Ok(set)
    }

    /// Where the elements of a list being built start (for [`Self::end_list`]).
    pub(crate) fn list_mark(&self) -> usize {
        self.pending_values.len()
    }

    /// Add an element to the list being built.
    pub(crate) fn push_element(&mut self, value: Val) {
        self.pending_values.push(value);
    }

    /// Complete the list whose elements were pushed since `mark`.
    pub(crate) fn end_list(&mut self, mark: usize) -> Result<Span> {
        let start = self.values.len();
        self.values.extend(self.pending_values.drain(mark..));
        span(start, self.values.len())
    }

    /// Where the entries of a map being built start (for [`Self::end_map`]).
    pub(crate) fn map_mark(&self) -> usize {
        self.pending_entries.len()
    }

    /// Add an entry to the map being built.
    pub(crate) fn push_entry(&mut self, name: Name, value: Val) {
        self.pending_entries.push(Entry { name, value });
    }

    /// Complete the map whose entries were pushed since `mark`: a name pushed twice keeps its
    /// last value.
    pub(crate) fn end_map(&mut self, mark: usize) -> Result<Span> {
        let pending = &self.pending_entries[mark..];
        let duplicated = if pending.len() <= 32 {
            // At most 496 comparisons of two integers: cheaper than hashing.
            (1..pending.len()).any(|i| pending[..i].iter().any(|e| e.name == pending[i].name))
        } else {
            let mut seen: std::collections::HashSet<Name, foldhash::fast::RandomState> =
                std::collections::HashSet::with_capacity_and_hasher(
                    pending.len(),
                    Default::default(),
                );
            !pending.iter().all(|e| seen.insert(e.name))
        };
        let start = self.entries.len();
        if duplicated {
            let kept: Vec<Entry> = pending
                .iter()
                .enumerate()
                .filter(|(i, e)| !pending[i + 1..].iter().any(|later| later.name == e.name))
                .map(|(_, e)| *e)
                .collect();
            self.entries.extend(kept);
            self.pending_entries.truncate(mark);
        } else {
            self.entries.extend(self.pending_entries.drain(mark..));
        }
        span(start, self.entries.len())
    }

    /// Complete an item whose entries were pushed since `mark`.
    pub(crate) fn end_item(&mut self, mark: usize) -> Result<()> {
        let entries = self.end_map(mark)?;
        self.items.push(entries);
        Ok(())
    }

    /// The attributes of item `index`.
    pub(crate) fn item(&self, index: usize) -> &[Entry] {
        &self.entries[self.items[index].range()]
    }

    /// The attributes of every item, in order.
    pub(crate) fn items(&self) -> impl ExactSizeIterator<Item = &[Entry]> + '_ {
        self.items.iter().map(|s| &self.entries[s.range()])
    }

    /// The value of attribute `name` of item `index`, if it has one.
    pub(crate) fn get(&self, index: usize, name: &str) -> Option<Val> {
        let name = self.name_of(name)?;
        self.item(index)
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value)
    }

    /// Keep only the items for which `keep` is true (the arena stays as it is).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Rows, usize) -> bool) {
        let kept: Vec<Span> = (0..self.items.len())
            .filter(|&i| keep(self, i))
            .map(|i| self.items[i])
            .collect();
        self.items = kept;
    }

    /// An entry's name.
    pub(crate) fn name(&self, entry: &Entry) -> &str {
        self.name_text(entry.name)
    }

    /// The text of a name.
    pub(crate) fn name_text(&self, name: Name) -> &str {
        &self.names[name.index()]
    }

    /// The [`Name`] of `name`, if any item or map of these rows has an attribute so named.
    pub(crate) fn name_of(&self, name: &str) -> Option<Name> {
        self.names.get_index_of(name).map(|i| Name(i as u32))
    }

    /// Every distinct attribute name, in the order of their [`Name`]s (some may belong to no
    /// item: an item that failed to parse leaves its names behind).
    pub(crate) fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    /// The text of an `S` or `N` value (a span of the text).
    pub(crate) fn text(&self, span: Span) -> &str {
        &self.text[span.range()]
    }

    /// The bytes of a `B` value.
    pub(crate) fn bytes(&self, span: Span) -> &[u8] {
        &self.bytes[span.range()]
    }

    /// The elements of a list or set.
    pub(crate) fn list(&self, span: Span) -> &[Val] {
        &self.values[span.range()]
    }

    /// The entries of a map.
    pub(crate) fn map(&self, span: Span) -> &[Entry] {
        &self.entries[span.range()]
    }

    /// Item `index` as the SDK's type.
    pub fn to_item(&self, index: usize) -> Item {
        self.entries_to_map(self.item(index))
    }

    /// Every item as the SDK's type.
    pub fn to_items(&self) -> Vec<Item> {
        (0..self.len()).map(|i| self.to_item(i)).collect()
    }

    fn entries_to_map(&self, entries: &[Entry]) -> Item {
        entries
            .iter()
            .map(|e| (self.name(e).to_owned(), self.to_value(e.value)))
            .collect()
    }

    /// A value as the SDK's type.
    pub(crate) fn to_value(&self, value: Val) -> AV {
        let texts = |s: Span| {
            self.list(s)
                .iter()
                .map(|v| match v {
                    Val::S(t) | Val::N(t) => self.text(*t).to_owned(),
                    _ => unreachable!("a string or number set holds text"),
                })
                .collect()
        };
        match value {
            Val::Null => AV::Null(true),
            Val::Bool(b) => AV::Bool(b),
            Val::S(s) => AV::S(self.text(s).to_owned()),
            Val::N(s) => AV::N(self.text(s).to_owned()),
            Val::B(s) => AV::B(Blob::new(self.bytes(s))),
            Val::SS(s) => AV::Ss(texts(s)),
            Val::NS(s) => AV::Ns(texts(s)),
            Val::BS(s) => AV::Bs(
                self.list(s)
                    .iter()
                    .map(|v| match v {
                        Val::B(b) => Blob::new(self.bytes(*b)),
                        _ => unreachable!("a binary set holds binaries"),
                    })
                    .collect(),
            ),
            Val::L(s) => AV::L(self.list(s).iter().map(|v| self.to_value(*v)).collect()),
            Val::M(s) => AV::M(self.entries_to_map(self.map(s))),
        }
    }

    /// Append the DynamoDB JSON of `value` to `out`: the text [`super::json::value_to_json`]
    /// gives for the same value (map keys sorted, serde_json's escaping).
    pub(crate) fn write_json(&self, value: Val, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| {
            serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail")
        };
        let base64 = |out: &mut Vec<u8>, b: &[u8]| {
            out.push(b'"');
            let start = out.len();
            out.resize(start + base64::encoded_len(b.len(), true).expect("fits"), 0);
            let written = BASE64
                .encode_slice(b, &mut out[start..])
                .expect("sized for it");
            out.truncate(start + written);
            out.push(b'"');
        };
        let tag = |out: &mut Vec<u8>, tag: &str| {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(b"\":");
        };
        let list = |out: &mut Vec<u8>, name: &str, s: Span, each: &dyn Fn(&mut Vec<u8>, Val)| {
            tag(out, name);
            out.push(b'[');
            for (i, v) in self.list(s).iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                each(out, *v);
            }
            out.extend_from_slice(b"]}");
        };
        let text = |out: &mut Vec<u8>, v: Val| match v {
            Val::S(t) | Val::N(t) => string(out, self.text(t)),
            _ => unreachable!("a string or number set holds text"),
        };
        match value {
            Val::Null => out.extend_from_slice(br#"{"NULL":true}"#),
            Val::Bool(true) => out.extend_from_slice(br#"{"BOOL":true}"#),
            Val::Bool(false) => out.extend_from_slice(br#"{"BOOL":false}"#),
            Val::S(s) => {
                tag(out, "S");
                string(out, self.text(s));
                out.push(b'}');
            }
            Val::N(s) => {
                tag(out, "N");
                string(out, self.text(s));
                out.push(b'}');
            }
            Val::B(s) => {
                tag(out, "B");
                base64(out, self.bytes(s));
                out.push(b'}');
            }
            Val::SS(s) => list(out, "SS", s, &text),
            Val::NS(s) => list(out, "NS", s, &text),
            Val::BS(s) => list(out, "BS", s, &|out, v| match v {
                Val::B(b) => base64(out, self.bytes(b)),
                _ => unreachable!("a binary set holds binaries"),
            }),
            Val::L(s) => list(out, "L", s, &|out, v| self.write_json(v, out)),
            Val::M(s) => {
                tag(out, "M");
                out.push(b'{');
                let mut entries: Vec<&Entry> = self.map(s).iter().collect();
                entries.sort_unstable_by(|a, b| self.name(a).cmp(self.name(b)));
                for (i, e) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    string(out, self.name(e));
                    out.push(b':');
                    self.write_json(e.value, out);
                }
                out.extend_from_slice(b"}}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::arbitrary;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Items go in and come back out unchanged, and every value's DynamoDB JSON is the
        /// text the `AttributeValue` writer gives.
        #[test]
        fn items_round_trip_and_write_the_same_json(items in proptest::collection::vec(arbitrary::item(), 0..4)) {
            let rows = Rows::from_items(&items).unwrap();
            prop_assert_eq!(rows.len(), items.len());
            prop_assert_eq!(rows.to_items(), items.clone());
            for (i, item) in items.iter().enumerate() {
                let mut json = Vec::new();
                rows.write_json(Val::M(rows.items[i]), &mut json);
                let expected = crate::convert::json::value_to_json(&AV::M(item.clone())).unwrap();
                prop_assert_eq!(String::from_utf8(json).unwrap(), expected);
            }
        }

        /// A cleared arena (as a spare one is) holds nothing of its earlier items: filled
        /// again, it gives exactly the new items and the new items' names.
        #[test]
        fn a_cleared_arena_holds_only_what_comes_after(
            before in proptest::collection::vec(arbitrary::item(), 1..4),
            after in proptest::collection::vec(arbitrary::item(), 0..4),
        ) {
            let mut rows = Rows::from_items(&before).unwrap();
            let capacity = rows.capacity_bytes();
            rows.clear();
            prop_assert_eq!(rows.capacity_bytes(), capacity);
            for item in &after {
                rows.push_item(item).unwrap();
            }
            prop_assert_eq!(rows.to_items(), after.clone());
            let fresh = Rows::from_items(&after).unwrap();
            prop_assert_eq!(rows.names().collect::<Vec<_>>(), fresh.names().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value() {
        for width in [3, 40, 100] {
            let mut rows = Rows::new();
            let mark = rows.map_mark();
            for i in 0..width {
                let name = rows.push_name(&format!("a{}", i % 2)).unwrap();
                let value = rows.push_str(&i.to_string()).unwrap();
                rows.push_entry(name, Val::N(value));
            }
            rows.end_item(mark).unwrap();
            let last = |parity: usize| (0..width).rev().find(|i| i % 2 == parity).unwrap();
            let item = rows.to_item(0);
            assert_eq!(item.len(), 2);
            assert_eq!(item["a0"], AV::N(last(0).to_string()));
            assert_eq!(item["a1"], AV::N(last(1).to_string()));
            let got = rows.get(0, "a1").map(|v| rows.to_value(v));
            assert_eq!(got, Some(AV::N(last(1).to_string())));
        }
    }

    #[test]
    fn retain_keeps_the_chosen_items_in_order() {
        let items: Vec<Item> = (0..5)
            .map(|i| [("n".to_owned(), AV::N(i.to_string()))].into())
            .collect();
        let mut rows = Rows::from_items(&items).unwrap();
        rows.retain(|rows, i| matches!(rows.get(i, "n"), Some(Val::N(s)) if rows.text(s) != "2"));
        let expected: Vec<Item> = items
            .into_iter()
            .filter(|i| i["n"] != AV::N("2".into()))
            .collect();
        assert_eq!(rows.to_items(), expected);
    }
}
