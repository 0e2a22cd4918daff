//! The fast path of the DynamoDB JSON parsers: a strict reader of well-formed Scan responses
//! and full export lines, straight into [`Rows`].
//!
//! serde_json reads a value through a visitor per value, a seed per string and a type tag
//! matched as a string; at about a kilobyte per item that was a third of a snapshot's CPU.
//! This reader walks the bytes of the shape DynamoDB writes (`{"name":{"S":"..."},...}`) with
//! one scan per string, eight bytes at a time.
//!
//! It takes only what it is sure of. Anything else (a type tag it does not know, an empty
//! value, invalid base64, a duplicated top-level field, a lone surrogate escape, a control
//! character in a string, nesting deeper than serde_json allows, text after the end) makes it
//! give up, and the caller parses the same bytes again with the serde parser in
//! [`super::raw`], which decides: the same items, or the same error, as before. The small
//! fields of a Scan response (`Count`, `LastEvaluatedKey`, ...) are read with serde_json
//! itself. The tests in `raw` hold both parsers to the same items on every type.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::dynamo_json::{Consumed, RawItem, ScanHead};
use crate::convert::Rows;
use crate::convert::rows::{Span, Val};

/// Values nested deeper than this go to serde_json, which decides (its limit is 128 arrays and
/// objects, two per value; DynamoDB's is 32 levels).
const MAX_DEPTH: usize = 50;

/// Parse a Scan response body (valid UTF-8) into `head` and `rows`; `None` when the body is
/// not of the shape this reader takes (then `rows` may hold part of it: throw them away).
pub(crate) fn scan_page(text: &str, head: &mut ScanHead, rows: &mut Rows) -> Option<()> {
    let mut r = Reader::new(text);
    r.byte(b'{')?;
    let mut seen = [false; 5];
    let mut once = |i: usize| (!std::mem::replace(&mut seen[i], true)).then_some(());
    if !r.closes(b'}') {
        loop {
            let key = r.plain_string()?;
            r.byte(b':')?;
            match key {
                "Items" => {
                    once(0)?;
                    r.byte(b'[')?;
                    if !r.closes(b']') {
                        loop {
                            r.item(rows)?;
                            if !r.comma_or(b']')? {
                                break;
                            }
                        }
                    }
                }
                "Count" => {
                    once(1)?;
                    head.count = r.serde()?;
                }
                "ScannedCount" => {
                    once(2)?;
                    head.scanned_count = r.serde()?;
                }
                "LastEvaluatedKey" => {
                    once(3)?;
                    head.last_evaluated_key = r.serde::<Option<RawItem>>()?;
                }
                "ConsumedCapacity" => {
                    once(4)?;
                    head.consumed_capacity = r.serde::<Option<Consumed>>()?;
                }
                _ => {
                    r.serde::<IgnoredAny>()?;
                }
            }
            if !r.comma_or(b'}')? {
                break;
            }
        }
    }
    r.end()
}

/// Parse a full export line (valid UTF-8), `{"Item":{...}}`, appending its item to `rows`;
/// `None` when the line is anything else (then `rows` may hold part of it: roll them back).
pub(crate) fn full_line(text: &str, rows: &mut Rows) -> Option<()> {
    let mut r = Reader::new(text);
    r.byte(b'{')?;
    if r.plain_string()? != "Item" {
        return None;
    }
    r.byte(b':')?;
    r.item(rows)?;
    r.byte(b'}')?;
    r.end()
}

/// A position in JSON text.
struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// Scratch for a name with escapes.
    name: String,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            name: String::new(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Whitespace, then `c` if it is next (true, and consumed).
    fn closes(&mut self, c: u8) -> bool {
        self.skip_ws();
        let next = self.b.get(self.i) == Some(&c);
        self.i += usize::from(next);
        next
    }

    /// Whitespace, then `c`.
    fn byte(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// Whitespace, then `,` (true) or `close` (false).
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        match c {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// Nothing but whitespace is left.
    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.i == self.b.len()).then_some(())
    }

    /// One value with serde_json, from here.
    fn serde<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let rest = &self.text[self.i..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.i += values.byte_offset();
        Some(value)
    }

    /// Whitespace, then a string without escapes (keys and type tags), borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.i;
        let end = find_special(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        Some(&self.text[start..end])
    }

    /// Whitespace, then a string, appended to the rows' text.
    fn string(&mut self, rows: &mut Rows) -> Option<Span> {
        self.byte(b'"')?;
        let start = rows.text_len();
        loop {
            let end = find_special(self.b, self.i);
            rows.append_text(&self.text[self.i..end]);
            self.i = end + 1;
            match self.b.get(end)? {
                b'"' => return rows.text_since(start).ok(),
                b'\\' => {
                    let c = self.escape()?;
                    rows.append_text(c.encode_utf8(&mut [0; 4]));
                }
                _ => return None,
            }
        }
    }

    /// The character of an escape, after its backslash.
    fn escape(&mut self) -> Option<char> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        if self.b.get(self.i..self.i + 2)? != b"\\u" {
                            return None;
                        }
                        self.i += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    c => char::from_u32(c)?,
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + (d as char).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    /// An attribute name: a string, held once by the rows.
    fn name(&mut self, rows: &mut Rows) -> Option<crate::convert::rows::Name> {
        self.byte(b'"')?;
        let start = self.i;
        let end = find_special(self.b, start);
        if self.b.get(end) == Some(&b'"') {
            self.i = end + 1;
            return rows.push_name(&self.text[start..end]).ok();
        }
        let mut name = std::mem::take(&mut self.name);
        name.clear();
        let mut end = end;
        loop {
            name.push_str(&self.text[self.i..end]);
            self.i = end + 1;
            match self.b.get(end)? {
                b'"' => break,
                b'\\' => name.push(self.escape()?),
                _ => return None,
            }
            end = find_special(self.b, self.i);
        }
        let pushed = rows.push_name(&name).ok();
        self.name = name;
        pushed
    }

    /// An item or map's entries, `{"name":value,...}`, completed as an item or a map.
    fn entries(&mut self, rows: &mut Rows) -> Option<usize> {
        self.byte(b'{')?;
        let mark = rows.map_mark();
        if self.closes(b'}') {
            return Some(mark);
        }
        loop {
            let name = self.name(rows)?;
            self.byte(b':')?;
            let value = self.value(rows)?;
            rows.push_entry(name, value);
            if !self.comma_or(b'}')? {
                return Some(mark);
            }
        }
    }

    /// An item.
    fn item(&mut self, rows: &mut Rows) -> Option<()> {
        let mark = self.entries(rows)?;
        rows.end_item(mark).ok()
    }

    /// A list of values or a set of strings, `[...]`, completed as a list of the rows.
    fn list(
        &mut self,
        rows: &mut Rows,
        element: fn(&mut Self, &mut Rows) -> Option<Val>,
    ) -> Option<Span> {
        self.byte(b'[')?;
        let mark = rows.list_mark();
        if !self.closes(b']') {
            loop {
                let v = element(self, rows)?;
                rows.push_element(v);
                if !self.comma_or(b']')? {
                    break;
                }
            }
        }
        rows.end_list(mark).ok()
    }

    fn bool(&mut self) -> Option<bool> {
        self.skip_ws();
        let rest = &self.b[self.i..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.i += len;
        Some(value)
    }

    /// One attribute value, `{"T":...}`.
    fn value(&mut self, rows: &mut Rows) -> Option<Val> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.byte(b'{')?;
        let tag = self.plain_string()?;
        self.byte(b':')?;
        let text = |r: &mut Self, rows: &mut Rows| r.string(rows).map(Val::S);
        let v = match tag {
            "S" => Val::S(self.string(rows)?),
            "N" => Val::N(self.string(rows)?),
            "B" => {
                let text = self.string(rows)?;
                Val::B(rows.decode_base64(text).ok()?)
            }
            "BOOL" => Val::Bool(self.bool()?),
            // DynamoDB writes `"NULL": true`; serde_json decides anything else.
            "NULL" => {
                self.bool()?;
                Val::Null
            }
            "SS" => Val::SS(self.list(rows, text)?),
            "NS" => Val::NS(self.list(rows, |r, rows| r.string(rows).map(Val::N))?),
            "BS" => {
                let texts = self.list(rows, text)?;
                Val::BS(rows.decode_base64_set(texts).ok()?)
            }
            "L" => Val::L(self.list(rows, Self::value)?),
            "M" => {
                let mark = self.entries(rows)?;
                Val::M(rows.end_map(mark).ok()?)
            }
            _ => return None,
        };
        self.byte(b'}')?;
        self.depth -= 1;
        Some(v)
    }
}

/// The position of the first `"`, `\` or control character at or after `i` (or the end):
/// eight bytes at a time.
fn find_special(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of the mask is set where the byte is zero (quote, backslash: after the xor) or
    // below 0x20; bytes after the first match may be set wrongly, the first never is.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let found = zero(w ^ (ONES * b'"' as u64))
            | zero(w ^ (ONES * b'\\' as u64))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::super::dynamo_json::{serde_full_line, serde_scan_page};
    use super::*;
    use crate::convert::Item;
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use proptest::prelude::*;

    /// A page in comparable terms: the small fields and the items.
    type Page = (i64, i64, Option<Item>, Option<Option<f64>>, Vec<Item>);

    fn page(head: ScanHead, rows: &Rows) -> Page {
        (
            head.count,
            head.scanned_count,
            head.last_evaluated_key.map(|k| k.0),
            head.consumed_capacity.map(|c| c.capacity_units),
            rows.to_items(),
        )
    }

    /// The fast path's page, when it takes `body`; whenever it does, serde_json must take the
    /// body too and give the same page.
    fn fast_page(body: &str) -> Option<Page> {
        let (mut head, mut rows) = (ScanHead::default(), Rows::new());
        scan_page(body, &mut head, &mut rows)?;
        let fast = page(head, &rows);
        let (mut head, mut rows) = (ScanHead::default(), Rows::new());
        serde_scan_page(body.as_bytes(), &mut head, &mut rows)
            .unwrap_or_else(|e| panic!("the fast path took {body:?}, serde_json says {e}"));
        assert_eq!(fast, page(head, &rows), "{body}");
        Some(fast)
    }

    /// [`fast_page`] for a full export line.
    fn fast_line(line: &str) -> Option<Vec<Item>> {
        let mut rows = Rows::new();
        full_line(line, &mut rows)?;
        let mut serde_rows = Rows::new();
        assert!(serde_full_line(line.as_bytes(), &mut serde_rows), "{line}");
        assert_eq!(rows.to_items(), serde_rows.to_items(), "{line}");
        Some(rows.to_items())
    }

    /// The DynamoDB JSON of an item's attributes (`{"a":{"S":"x"},...}`).
    fn item_json(item: &Item) -> String {
        let json = crate::convert::json::value_to_json(&AV::M(item.clone())).unwrap();
        serde_json::from_str::<serde_json::Value>(&json).unwrap()["M"].to_string()
    }

    /// `json` with every character outside ASCII written as a `\u` escape (pairs of them
    /// outside the Basic Multilingual Plane), as some writers do.
    fn ascii_escaped(json: &str) -> String {
        let mut out = String::new();
        for c in json.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    }

    /// `text` with one byte replaced, if that leaves it UTF-8.
    fn damaged(text: String, (at, byte): (proptest::sample::Index, u8)) -> Option<String> {
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len());
        bytes[at] = byte;
        String::from_utf8(bytes).ok()
    }

    /// `json` as serde_json pretty-prints it: whitespace between every token.
    fn pretty(json: &str) -> String {
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(json).unwrap())
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Pages of items of every type take the fast path, compact, pretty-printed or with
        /// escapes, and give serde_json's page; damaged or cut short, the fast path either
        /// gives serde_json's page too or gives up.
        #[test]
        fn pages_take_the_fast_path_and_agree(
            items in proptest::collection::vec(crate::convert::arbitrary::item(), 0..4),
            text in "[\\x00-\\x1f\"\\\\/a\u{7f}\u{e9}\u{2028}\u{1F600}]{0,12}",
            cut in any::<proptest::sample::Index>(),
            damage in (any::<proptest::sample::Index>(), any::<u8>()),
        ) {
            // Text that needs every escape, as a name and as values.
            let mut items = items;
            for item in &mut items {
                item.insert(text.clone(), AV::Ss(vec![text.clone()]));
                item.insert("text".into(), AV::S(text.clone()));
            }
            let json: Vec<String> = items.iter().map(item_json).collect();
            let body = format!(
                r#"{{"Count":{},"Items":[{}],"ScannedCount":9,"LastEvaluatedKey":{{"pk":{{"S":"k"}}}},"ConsumedCapacity":{{"CapacityUnits":1.5,"TableName":"t"}},"Other":[1,{{}}]}}"#,
                items.len(),
                json.join(",")
            );
            for body in [body.clone(), pretty(&body), ascii_escaped(&body)] {
                let page = fast_page(&body);
                prop_assert!(page.is_some(), "the fast path gave up on {}", body);
                prop_assert_eq!(&page.unwrap().4, &items);
            }
            let mut at = cut.index(body.len());
            while !body.is_char_boundary(at) {
                at -= 1;
            }
            prop_assert_eq!(fast_page(&body[..at]), None);
            if let Some(damaged) = damaged(body, damage) {
                fast_page(&damaged);
            }
        }

        /// The same for a full export's lines.
        #[test]
        fn lines_take_the_fast_path_and_agree(
            item in crate::convert::arbitrary::item(),
            damage in (any::<proptest::sample::Index>(), any::<u8>()),
        ) {
            let line = format!(r#"{{"Item":{}}}"#, item_json(&item));
            for line in [line.clone(), pretty(&line), ascii_escaped(&line)] {
                prop_assert_eq!(fast_line(&line), Some(vec![item.clone()]), "{}", line);
            }
            if let Some(damaged) = damaged(line, damage) {
                fast_line(&damaged);
            }
        }

        /// Random text: the fast path gives up, or gives serde_json's page.
        #[test]
        fn random_text_agrees(text in "\\PC{0,120}|[{}\\[\\]\":,SNBLMbool0-9 \\\\u]{0,120}") {
            fast_page(&text);
            fast_line(&text);
        }
    }

    #[test]
    fn gives_up_on_what_serde_json_decides() {
        for body in [
            r#"{"Items":[],"Items":[]}"#,
            r#"{"Items":[{"a":{"Q":"1"}}]}"#,
            r#"{"Items":[{"a":{}}]}"#,
            r#"{"Items":[{"a":{"S":"x","N":"1"}}]}"#,
            r#"{"Items":[{"a":{"B":"!"}}]}"#,
            r#"{"Items":[{"a":{"NULL":1}}]}"#,
            r#"{"Items":[{"a":{"S":"\ud800"}}]}"#,
            "{\"Items\":[{\"a\":{\"S\":\"tab\there\"}}]}",
            r#"{"Items":[]} x"#,
            r#"{"Items":null}"#,
            r#"{"Count":"1","Items":[]}"#,
        ] {
            let (mut head, mut rows) = (ScanHead::default(), Rows::new());
            assert_eq!(scan_page(body, &mut head, &mut rows), None, "{body}");
        }
        // Nesting deeper than the fast path goes: serde_json decides (here: it takes it).
        let deep = (0..60).fold(r#"{"S":"x"}"#.to_owned(), |v, _| {
            format!(r#"{{"L":[{v}]}}"#)
        });
        let body = format!(r#"{{"Items":[{{"a":{deep}}}]}}"#);
        let (mut head, mut rows) = (ScanHead::default(), Rows::new());
        assert_eq!(scan_page(&body, &mut head, &mut rows), None);
        assert_eq!(
            crate::source::raw::parse_page(body.as_bytes())
                .unwrap()
                .1
                .len(),
            1
        );
    }

    #[test]
    fn find_special_finds_the_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut text: Vec<u8> = (0..len).map(|i| b"a~ \x7f\xc3\xa9!#"[i % 8]).collect();
                    if at < len {
                        text[at] = special;
                        // Specials after the first do not change the answer.
                        if at + 1 < len {
                            text[at + 1] = b'"';
                        }
                    }
                    assert_eq!(find_special(&text, 0), at, "{text:?}");
                }
            }
        }
    }
}
