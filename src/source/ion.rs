//! The Ion text DynamoDB writes in `ION` exports, read into the same shape as its DynamoDB JSON
//! lines, so both formats go through one path.
//!
//! One line is one value, optionally after the `$ion_1_0` version marker:
//!
//! ```text
//! $ion_1_0 {Item:{pk:"a",n:103.,d:1.5d-3,b:{{AAE=}},ok:true,x:null,ss:$dynamodb_SS::["a","b"],m:{k:[1.,"two"]}}}
//! ```
//!
//! Attribute values map as DynamoDB documents them: strings to S, decimals and integers to N
//! (written back as exact decimal text: `103.` is `103`, `1.5d-3` is `1.5E-3`), blobs to B,
//! booleans to BOOL, `null` to NULL, lists to L, structs to M, and lists annotated
//! `$dynamodb_SS`, `$dynamodb_NS` or `$dynamodb_BS` to sets. Only this subset of Ion is read;
//! anything else (floats, timestamps, symbols as values, clobs) is an error naming it.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// An Ion value of the subset DynamoDB writes.
#[derive(Debug, Clone, PartialEq)]
enum Ion {
    Null,
    Bool(bool),
    /// Decimal or integer, as exact decimal text.
    Number(String),
    String(String),
    Blob(Vec<u8>),
    List(Vec<Ion>, Option<String>),
    Struct(Vec<(String, Ion)>),
}

/// One line of an ION export as the equivalent DynamoDB JSON line: `Item`, `Keys`, `NewImage`
/// and `OldImage` hold DynamoDB JSON attribute maps; `Metadata` holds plain numbers.
pub(crate) fn line_to_json(line: &str) -> Result<Value> {
    let mut p = Parser {
        s: line.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    if p.rest().starts_with(b"$ion_1_0") {
        p.i += "$ion_1_0".len();
    }
    let value = p.value()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.error("text after the value"));
    }
    let Ion::Struct(fields) = value else {
        return Err(Error::invalid("an ION export line must be a struct"));
    };
    let mut out = Map::new();
    for (name, value) in fields {
        let converted = match name.as_str() {
            "Item" | "Keys" | "NewImage" | "OldImage" => attributes(value)?,
            _ => plain(value)?,
        };
        out.insert(name, converted);
    }
    Ok(Value::Object(out))
}

fn attributes(value: Ion) -> Result<Value> {
    match value {
        Ion::Struct(fields) => Ok(Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k, attribute(v)?)))
                .collect::<Result<_>>()?,
        )),
        Ion::Null => Ok(Value::Null),
        other => Err(Error::invalid(format!(
            "an item must be a struct, not {other:?}"
        ))),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An attribute value as DynamoDB JSON.
fn attribute(value: Ion) -> Result<Value> {
    Ok(match value {
        Ion::Null => json!({"NULL": true}),
        Ion::Bool(b) => json!({"BOOL": b}),
        Ion::Number(n) => json!({"N": n}),
        Ion::String(s) => json!({"S": s}),
        Ion::Blob(b) => json!({"B": b64(&b)}),
        Ion::Struct(fields) => json!({"M": attributes(Ion::Struct(fields))?}),
        Ion::List(items, None) => json!({
            "L": items.into_iter().map(attribute).collect::<Result<Vec<_>>>()?
        }),
        Ion::List(items, Some(set)) => {
            let member = |v: Ion| -> Result<Value> {
                match (set.as_str(), v) {
                    ("$dynamodb_SS", Ion::String(s)) => Ok(Value::String(s)),
                    ("$dynamodb_NS", Ion::Number(n)) => Ok(Value::String(n)),
                    ("$dynamodb_BS", Ion::Blob(b)) => Ok(Value::String(b64(&b))),
                    (set, v) => Err(Error::invalid(format!("{v:?} in a {set} set"))),
                }
            };
            let tag = match set.as_str() {
                "$dynamodb_SS" => "SS",
                "$dynamodb_NS" => "NS",
                "$dynamodb_BS" => "BS",
                other => return Err(Error::invalid(format!("unknown annotation {other}"))),
            };
            json!({ tag: items.into_iter().map(member).collect::<Result<Vec<_>>>()? })
        }
    })
}

/// Metadata: numbers as JSON numbers (or their text when they do not fit), structs as objects.
fn plain(value: Ion) -> Result<Value> {
    Ok(match value {
        Ion::Null => Value::Null,
        Ion::Bool(b) => Value::Bool(b),
        Ion::Number(n) => n
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(n)),
        Ion::String(s) => Value::String(s),
        Ion::Struct(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| Ok((k, plain(v)?)))
                .collect::<Result<_>>()?,
        ),
        other => return Err(Error::invalid(format!("unexpected {other:?} in metadata"))),
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }

    fn error(&self, what: &str) -> Error {
        Error::invalid(format!("ION: {what} at column {}", self.i + 1))
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", c as char)))
        }
    }

    fn identifier(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i > start && !self.s[start].is_ascii_digit() {
            Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        } else {
            self.i = start;
            None
        }
    }

    fn value(&mut self) -> Result<Ion> {
        self.skip_ws();
        // An annotation: `name::value`.
        let save = self.i;
        if let Some(name) = self.identifier() {
            if self.rest().starts_with(b"::") {
                self.i += 2;
                return match self.value()? {
                    Ion::List(items, None) => Ok(Ion::List(items, Some(name))),
                    other => Err(Error::invalid(format!(
                        "ION: annotation {name} on {other:?}"
                    ))),
                };
            }
            return match name.as_str() {
                "null" => Ok(Ion::Null),
                "true" => Ok(Ion::Bool(true)),
                "false" => Ok(Ion::Bool(false)),
                _ if name.starts_with("null.") => Ok(Ion::Null),
                _ => {
                    self.i = save;
                    Err(self.error(&format!("unsupported symbol value '{name}'")))
                }
            };
        }
        match self.peek() {
            Some(b'"') => Ok(Ion::String(self.string(b'"')?)),
            Some(b'{') if self.rest().starts_with(b"{{") => self.blob(),
            Some(b'{') => self.structure(),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        return Ok(Ion::List(items, None));
                    }
                    items.push(self.value()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {}
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            _ => Err(self.error("unexpected character")),
        }
    }

    fn structure(&mut self) -> Result<Ion> {
        self.i += 1;
        let mut fields = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Ion::Struct(fields));
                }
                Some(q @ (b'"' | b'\'')) => {
                    let name = self.string(q)?;
                    self.expect(b':')?;
                    fields.push((name, self.value()?));
                }
                _ => {
                    let name = self
                        .identifier()
                        .ok_or_else(|| self.error("expected a field name"))?;
                    self.expect(b':')?;
                    fields.push((name, self.value()?));
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn blob(&mut self) -> Result<Ion> {
        self.i += 2;
        let start = self.i;
        let end = self.rest().windows(2).position(|w| w == b"}}");
        let end = end.ok_or_else(|| self.error("unterminated blob"))? + start;
        let text: String = String::from_utf8_lossy(&self.s[start..end])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        self.i = end + 2;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Ion::Blob)
            .map_err(|e| self.error(&format!("bad blob ({e})")))
    }

    fn number(&mut self) -> Result<Ion> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'd' | b'D' | b'_') {
                self.i += 1;
            } else if matches!(c, b'e' | b'E' | b'T' | b'x' | b'b') {
                return Err(self.error("floats, timestamps and radix integers are not supported"));
            } else {
                break;
            }
        }
        let text: String = String::from_utf8_lossy(&self.s[start..self.i])
            .replace('_', "")
            .replace(['d', 'D'], "E");
        // `103.` is the decimal 103.
        let text = match text.split_once('E') {
            Some((m, e)) => format!("{}E{e}", m.strip_suffix('.').unwrap_or(m)),
            None => text.strip_suffix('.').unwrap_or(&text).to_owned(),
        };
        if crate::convert::number::Decimal::parse(&text).is_none() {
            return Err(self.error(&format!("'{text}' is not a number")));
        }
        Ok(Ion::Number(text))
    }

    fn string(&mut self, quote: u8) -> Result<String> {
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.error("unterminated string"))?;
            self.i += 1;
            if c == quote {
                return String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"));
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = self
                .peek()
                .ok_or_else(|| self.error("unterminated escape"))?;
            self.i += 1;
            let simple = match e {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'0' => Some(0),
                b'a' => Some(7),
                b'b' => Some(8),
                b'f' => Some(12),
                b'v' => Some(11),
                b'"' | b'\'' | b'\\' | b'/' | b'?' => Some(e),
                _ => None,
            };
            if let Some(b) = simple {
                out.push(b);
                continue;
            }
            let digits = match e {
                b'x' => 2,
                b'u' => 4,
                b'U' => 8,
                _ => return Err(self.error("unknown escape")),
            };
            let hex = self
                .s
                .get(self.i..self.i + digits)
                .ok_or_else(|| self.error("short escape"))?;
            self.i += digits;
            let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                .map_err(|_| self.error("bad escape"))?;
            let ch = char::from_u32(code).ok_or_else(|| self.error("bad code point"))?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_dynamodb_type() {
        let line = r#"$ion_1_0 {Item:{pk:"a\"b\u00e9",n:103.,d:1.5d-3,big:-12345678901234567890123456789012345678,b:{{AAH/}},ok:true,x:null,ss:$dynamodb_SS::["a","b"],ns:$dynamodb_NS::[1.,2.5],bs:$dynamodb_BS::[{{AQ==}}],m:{'odd name':[1.,"two",null]},empty:{}}}"#;
        let v = line_to_json(line).unwrap();
        let item = &v["Item"];
        assert_eq!(item["pk"], json!({"S": "a\"bé"}));
        assert_eq!(item["n"], json!({"N": "103"}));
        assert_eq!(item["d"], json!({"N": "1.5E-3"}));
        assert_eq!(
            item["big"],
            json!({"N": "-12345678901234567890123456789012345678"})
        );
        assert_eq!(item["b"], json!({"B": "AAH/"}));
        assert_eq!(item["ok"], json!({"BOOL": true}));
        assert_eq!(item["x"], json!({"NULL": true}));
        assert_eq!(item["ss"], json!({"SS": ["a", "b"]}));
        assert_eq!(item["ns"], json!({"NS": ["1", "2.5"]}));
        assert_eq!(item["bs"], json!({"BS": ["AQ=="]}));
        assert_eq!(
            item["m"],
            json!({"M": {"odd name": {"L": [{"N": "1"}, {"S": "two"}, {"NULL": true}]}}})
        );
        assert_eq!(item["empty"], json!({"M": {}}));
    }

    #[test]
    fn reads_incremental_records() {
        let v = line_to_json(
            r#"{Metadata:{WriteTimestampMicros:1680109764000000},Keys:{pk:"a"},NewImage:{pk:"a",v:2.}}"#,
        )
        .unwrap();
        assert_eq!(
            v["Metadata"]["WriteTimestampMicros"],
            json!(1680109764000000u64)
        );
        assert_eq!(v["NewImage"]["v"], json!({"N": "2"}));
    }

    #[test]
    fn rejects_what_dynamodb_does_not_write() {
        for bad in [
            r#"{Item:{f:1.5e0}}"#,
            r#"{Item:{t:2026-11-24T}}"#,
            r#"{Item:{s:sym}}"#,
            r#"{Item:{s:"open}}"#,
            r#"{Item:{a:1.} extra"#,
            r#"[1.]"#,
        ] {
            assert!(line_to_json(bad).is_err(), "{bad}");
        }
    }
}
