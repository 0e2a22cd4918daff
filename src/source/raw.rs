//! Scan responses without the SDK's deserializer.
//!
//! The SDK still signs, sends and classifies every request (retries, errors, endpoints), but for
//! a successful Scan, [`TakeBody`] takes the raw JSON body away before the SDK deserializes it
//! and hands it an empty `{}` instead. The scan task hands the bytes to a blocking thread,
//! which parses the whole body in one pass ([`parse_page`]): the small fields the task waits
//! for (counts, LastEvaluatedKey, ConsumedCapacity) and the items, with serde_json straight into
//! a [`Rows`] arena (no allocation per value; see [`crate::convert::rows`]). Full export lines
//! take the same parser ([`parse_full_line`]). This keeps the largest CPU cost of a snapshot
//! (parsing) off the network tasks, and reads each body once (measured in `scripts/bench`).
//!
//! The parser's items and errors are pinned to those of the `AttributeValue` parser it
//! replaced, which the tests keep as a reference.

use std::sync::{Arc, Mutex};

pub(crate) use super::dynamo_json::{ParseError, ScanHead};
use super::dynamo_json::{reset_unknown_type, serde_full_line, serde_scan_page, took_unknown_type};
use crate::convert::Rows;
use crate::spare::Spares;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

/// Takes the body of a successful response for the caller (one request at a time).
#[derive(Debug, Clone, Default)]
pub(crate) struct TakeBody {
    slot: Arc<Mutex<Option<Taken>>>,
}

/// A response body taken from the SDK, with the checksum DynamoDB sent for it.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) body: SdkBody,
    /// The `x-amz-crc32` header: the CRC32 of the body as sent.
    pub(crate) crc32: Option<u32>,
}

impl TakeBody {
    /// The body taken from the last successful response, if any.
    pub(crate) fn take(&self) -> Option<Taken> {
        self.slot.lock().expect("not poisoned").take()
    }
}

/// Response bodies already parsed, kept for the responses to come (see [`crate::spare`]): one
/// per segment's response in flight, for the usual few segments.
const SPARE_BODIES: usize = 4;

/// A body larger than this is freed, not kept (a Scan page holds at most 1 MB of items).
const SPARE_BODY_BYTES: usize = 4 << 20;

static SPARE: Spares<Vec<u8>> = Spares::new(SPARE_BODIES);

/// Read a taken body to the end (into a spare buffer when one is kept) and check it against
/// its `x-amz-crc32` (as the AWS SDKs that deserialize DynamoDB responses do): a body damaged
/// on the way is an error, to be retried, never data. Give the body to [`recycle_body`] once
/// parsed.
pub(crate) async fn collect_checked(taken: Taken) -> Result<Vec<u8>, BoxError> {
    let mut stream = aws_smithy_types::byte_stream::ByteStream::new(taken.body);
    let mut body = SPARE.take().unwrap_or_default();
    if let Some(len) = stream.size_hint().1 {
        body.reserve(usize::try_from(len).unwrap_or(0).min(SPARE_BODY_BYTES));
    }
    let mut crc = crc32fast::Hasher::new();
    while let Some(chunk) = stream.try_next().await? {
        crc.update(&chunk);
        body.extend_from_slice(&chunk);
    }
    if let Some(expected) = taken.crc32 {
        let actual = crc.finalize();
        if actual != expected {
            recycle_body(body);
            return Err(format!(
                "the response body does not match its x-amz-crc32 header ({actual} instead \
                 of {expected}): damaged on the way"
            )
            .into());
        }
    }
    Ok(body)
}

/// Done with a body from [`collect_checked`]: keep its buffer for a response to come.
pub(crate) fn recycle_body(mut body: Vec<u8>) {
    if body.capacity() <= SPARE_BODY_BYTES {
        body.clear();
        SPARE.keep(body);
    }
}

impl Intercept for TakeBody {
    fn name(&self) -> &'static str {
        "ddbsnap::TakeBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        if response.status().is_success() {
            let crc32 = response
                .headers()
                .get("x-amz-crc32")
                .and_then(|v| v.trim().parse().ok());
            let body = std::mem::replace(response.body_mut(), SdkBody::from("{}"));
            *self.slot.lock().expect("not poisoned") = Some(Taken { body, crc32 });
        }
        Ok(())
    }
}

/// Parse a Scan response body, its small fields into `head` and its items into `rows`, in
/// one pass. On an error, `rows` may hold part of a page (throw it away).
fn scan_page(body: &[u8], head: &mut ScanHead, rows: &mut Rows) -> Result<(), serde_json::Error> {
    if let Ok(text) = std::str::from_utf8(body) {
        let before = rows.mark();
        if super::fast_json::scan_page(text, head, rows).is_some() {
            return Ok(());
        }
        // Not of the shape the fast path takes: serde_json reads it again, and decides.
        rows.rollback(before);
        *head = ScanHead::default();
    }
    serde_scan_page(body, head, rows)
}

/// Parse a full export's line, `{"Item":{...}}`, into `rows`. False, with `rows` as they
/// were, when the line is anything else or malformed (the caller's general parser then takes
/// it, and gives the error).
pub(crate) fn parse_full_line(line: &[u8], rows: &mut Rows) -> bool {
    if let Ok(text) = std::str::from_utf8(line) {
        let before = rows.mark();
        if super::fast_json::full_line(text, rows).is_some() {
            return true;
        }
        rows.rollback(before);
    }
    serde_full_line(line, rows)
}

/// Parse a Scan response body: its small fields and its items.
pub(crate) fn parse_page(body: &[u8]) -> Result<(ScanHead, Rows), ParseError> {
    reset_unknown_type();
    let mut head = ScanHead::default();
    let mut rows = Rows::for_json(body.len());
    match scan_page(body, &mut head, &mut rows) {
        Ok(()) => Ok((head, rows)),
        Err(e) if took_unknown_type() => {
            let text = e.to_string();
            let (path, rest) = text.split_once(": ").unwrap_or(("<item>", &text));
            let message = rest.split(" at line ").next().unwrap_or(rest).to_owned();
            Err(ParseError::UnknownType(path.to_owned(), message))
        }
        Err(e) => Err(ParseError::Malformed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Item;
    use crate::error::AttrPath;
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;

    /// The parser [`parse_page`] replaced (serde_json straight into `AttributeValue`s), kept
    /// to pin the new one to its items and errors.
    mod reference {
        use std::borrow::Cow;
        use std::collections::HashMap;
        use std::fmt;

        use aws_sdk_dynamodb::primitives::Blob;
        use aws_sdk_dynamodb::types::AttributeValue;
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD as BASE64;
        use serde::Deserialize;
        use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

        use crate::convert::Item;
        use crate::source::dynamo_json::{
            Consumed, ParseError, UNKNOWN_MESSAGE, UNKNOWN_TYPE, nest, took_unknown_type,
        };

        /// The small fields of a Scan response (the items are skipped, not parsed).
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub(crate) struct ScanHead {
            #[serde(default, rename = "Items")]
            _items: Option<IgnoredAny>,
            #[serde(default)]
            pub(crate) count: i64,
            #[serde(default)]
            pub(crate) scanned_count: i64,
            #[serde(default)]
            pub(crate) last_evaluated_key: Option<RawItem>,
            #[serde(default)]
            pub(crate) consumed_capacity: Option<Consumed>,
        }

        /// Parse the small fields of a Scan response body.
        pub(crate) fn parse_head(body: &[u8]) -> Result<ScanHead, serde_json::Error> {
            serde_json::from_slice(body)
        }

        #[derive(Deserialize)]
        struct ScanItems {
            #[serde(default, rename = "Items")]
            items: Vec<RawItem>,
        }

        /// An item in DynamoDB JSON.
        #[derive(Debug)]
        pub(crate) struct RawItem(pub(crate) Item);

        impl<'de> Deserialize<'de> for RawItem {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct ItemVisitor;
                impl<'de> Visitor<'de> for ItemVisitor {
                    type Value = RawItem;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a DynamoDB item")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawItem, A::Error> {
                        let mut item = HashMap::with_capacity(map.size_hint().unwrap_or(8));
                        while let Some(name) = map.next_key::<String>()? {
                            let value: Value = map
                                .next_value()
                                .map_err(|e| de::Error::custom(nest(&format!("'{name}'"), &e)))?;
                            item.insert(name, value.0);
                        }
                        Ok(RawItem(item))
                    }
                }
                d.deserialize_map(ItemVisitor)
            }
        }

        /// One attribute value in DynamoDB JSON (`{"S":"x"}`), straight into the SDK type.
        struct Value(AttributeValue);

        fn blob<E: de::Error>(text: &str) -> Result<Blob, E> {
            BASE64
                .decode(text)
                .map(Blob::new)
                .map_err(|e| E::custom(format!("invalid base64 in B: {e}")))
        }

        struct Blobs(Vec<Blob>);

        impl<'de> Deserialize<'de> for Blobs {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let texts: Vec<Cow<'de, str>> = Deserialize::deserialize(d)?;
                texts
                    .iter()
                    .map(|t| blob(t))
                    .collect::<Result<_, _>>()
                    .map(Blobs)
            }
        }

        struct Values(Vec<AttributeValue>);

        impl<'de> Deserialize<'de> for Values {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct SeqVisitor;
                impl<'de> Visitor<'de> for SeqVisitor {
                    type Value = Values;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a list of DynamoDB values")
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                        loop {
                            let next = seq.next_element::<Value>().map_err(|e| {
                                de::Error::custom(nest(&format!("[{}]", out.len()), &e))
                            })?;
                            match next {
                                Some(Value(v)) => out.push(v),
                                None => break,
                            }
                        }
                        Ok(Values(out))
                    }
                }
                d.deserialize_seq(SeqVisitor)
            }
        }

        impl<'de> Deserialize<'de> for Value {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct ValueVisitor;
                impl<'de> Visitor<'de> for ValueVisitor {
                    type Value = Value;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a DynamoDB attribute value")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                        let tag: Cow<'de, str> = map
                            .next_key()?
                            .ok_or_else(|| de::Error::custom("empty attribute value"))?;
                        use AttributeValue as AV;
                        let v = match tag.as_ref() {
                            "S" => AV::S(map.next_value()?),
                            "N" => AV::N(map.next_value()?),
                            "B" => AV::B(blob(&map.next_value::<Cow<'de, str>>()?)?),
                            "BOOL" => AV::Bool(map.next_value()?),
                            "NULL" => {
                                // DynamoDB JSON has `"NULL": true`; any value means null.
                                map.next_value::<IgnoredAny>()?;
                                AV::Null(true)
                            }
                            "SS" => AV::Ss(map.next_value()?),
                            "NS" => AV::Ns(map.next_value()?),
                            "BS" => AV::Bs(map.next_value::<Blobs>()?.0),
                            "L" => AV::L(map.next_value::<Values>()?.0),
                            "M" => AV::M(map.next_value::<RawItem>()?.0),
                            other => {
                                UNKNOWN_TYPE.with(|f| f.set(true));
                                return Err(de::Error::custom(format!(
                                    "{UNKNOWN_MESSAGE} ('{other}')"
                                )));
                            }
                        };
                        if map.next_key::<IgnoredAny>()?.is_some() {
                            return Err(de::Error::custom(
                                "an attribute value has more than one type",
                            ));
                        }
                        Ok(Value(v))
                    }
                }
                d.deserialize_map(ValueVisitor)
            }
        }

        /// Parse the items of a Scan response body.
        pub(crate) fn parse_items(body: &[u8]) -> Result<Vec<Item>, ParseError> {
            UNKNOWN_TYPE.with(|f| f.set(false));
            match serde_json::from_slice::<ScanItems>(body) {
                Ok(page) => Ok(page.items.into_iter().map(|i| i.0).collect()),
                Err(e) if took_unknown_type() => {
                    let text = e.to_string();
                    let (path, rest) = text.split_once(": ").unwrap_or(("<item>", &text));
                    let message = rest.split(" at line ").next().unwrap_or(rest).to_owned();
                    Err(ParseError::UnknownType(path.to_owned(), message))
                }
                Err(e) => Err(ParseError::Malformed(e)),
            }
        }
    }

    #[test]
    fn parses_every_type_like_dynamodb_json() {
        let values = vec![
            AttributeValue::S("a\"b\u{1F600}".into()),
            AttributeValue::N("-1.5E+3".into()),
            AttributeValue::B(Blob::new(vec![0, 255, 0])),
            AttributeValue::Bool(false),
            AttributeValue::Null(true),
            AttributeValue::Ss(vec!["x".into(), "".into()]),
            AttributeValue::Ns(vec!["1".into()]),
            AttributeValue::Bs(vec![Blob::new(vec![]), Blob::new(vec![1])]),
            AttributeValue::L(vec![
                AttributeValue::Null(true),
                AttributeValue::S("s".into()),
            ]),
            AttributeValue::M([("k.1 x".to_string(), AttributeValue::L(vec![]))].into()),
        ];
        let item: Item = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("a{i}"), v.clone()))
            .collect();
        let json = crate::convert::json::to_json(
            &AttributeValue::M(item.clone()),
            &mut AttrPath::default(),
        )
        .unwrap();
        let body = format!(
            r#"{{"Count":1,"Items":[{}],"ScannedCount":7,"LastEvaluatedKey":{{"pk":{{"S":"k"}}}},"ConsumedCapacity":{{"CapacityUnits":2.5,"TableName":"t"}}}}"#,
            json["M"]
        );
        let (head, rows) = parse_page(body.as_bytes()).unwrap();
        assert_eq!(rows.to_items(), vec![item]);
        assert_eq!(head.scanned_count, 7);
        assert_eq!(head.consumed_capacity.unwrap().capacity_units, Some(2.5));
        assert_eq!(
            head.last_evaluated_key.unwrap().0,
            [("pk".to_string(), AttributeValue::S("k".into()))].into()
        );
        let (empty, rows) = parse_page(b"{}").unwrap();
        assert!(empty.last_evaluated_key.is_none());
        assert!(rows.is_empty());
    }

    #[test]
    fn rejects_malformed_values() {
        for body in [
            r#"{"Items":[{"a":{"S":"x","N":"1"}}]}"#,
            r#"{"Items":[{"a":{}}]}"#,
            r#"{"Items":[{"a":{"B":"!!"}}]}"#,
            r#"{"Items":[{"a":{"S":1}}]}"#,
        ] {
            assert!(
                matches!(parse_items(body.as_bytes()), Err(ParseError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn unknown_types_name_their_path() {
        let body =
            r#"{"Items":[{"ok":{"S":"x"}},{"outer":{"M":{"list":{"L":[{"N":"1"},{"QQ":"x"}]}}}}]}"#;
        match parse_items(body.as_bytes()) {
            Err(ParseError::UnknownType(path, message)) => {
                assert_eq!(path, "'outer'.'list'[1]");
                assert!(message.contains("does not know"), "{message}");
                assert!(message.contains("'QQ'"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // The flag does not leak into the next parse.
        assert!(parse_items(br#"{"Items":[]}"#).is_ok());
    }

    /// The items of a Scan response body.
    fn parse_items(body: &[u8]) -> Result<Rows, ParseError> {
        parse_page(body).map(|(_, rows)| rows)
    }

    /// A parsed page in comparable terms: the small fields and the items, or the error.
    type Outcome = Result<(i64, i64, Option<Item>, Option<Option<f64>>, Vec<Item>), String>;

    fn message(e: ParseError) -> String {
        match e {
            ParseError::UnknownType(path, message) => format!("unknown at {path}: {message}"),
            ParseError::Malformed(e) => format!("malformed: {e}"),
        }
    }

    /// The page as [`parse_page`] reads it, and as the reference parsers (the small fields
    /// first, skipping the items, then the items) read it; `true` when the reference found
    /// the body not even valid JSON (then only failing matters, not the message).
    fn both(body: &[u8]) -> (Outcome, Outcome, bool) {
        let new = parse_page(body).map_err(message).map(|(head, rows)| {
            let key = head.last_evaluated_key.map(|k| k.0);
            let consumed = head.consumed_capacity.map(|c| c.capacity_units);
            (
                head.count,
                head.scanned_count,
                key,
                consumed,
                rows.to_items(),
            )
        });
        let head = match reference::parse_head(body) {
            Ok(head) => head,
            Err(e) => return (new, Err(format!("malformed: {e}")), true),
        };
        let old = reference::parse_items(body).map_err(message).map(|items| {
            let key = head.last_evaluated_key.map(|k| k.0);
            let consumed = head.consumed_capacity.map(|c| c.capacity_units);
            (head.count, head.scanned_count, key, consumed, items)
        });
        (new, old, false)
    }

    /// [`both`] agree. One difference is deliberate: a body that is a JSON array is an error
    /// (the reference took some arrays for its structs' fields in order, as serde's derive
    /// does; DynamoDB answers with an object).
    fn same(body: &[u8]) -> Result<(), String> {
        if body.trim_ascii_start().starts_with(b"[") {
            return match parse_page(body) {
                Ok(_) => Err("an array parsed as a page".into()),
                Err(_) => Ok(()),
            };
        }
        match both(body) {
            (new, old, false) if new != old => Err(format!("{new:?} != {old:?}")),
            (Ok(new), _, true) => Err(format!("{new:?} from a body that is not JSON")),
            _ => Ok(()),
        }
    }

    #[test]
    fn malformed_bodies_fail_as_they_did() {
        let values = [
            r#"{"S":"a\"b\u00e9\ud83d\ude00"}"#,
            r#"{"NULL":false}"#,
            r#"{"NULL":"yes"}"#,
            r#"{"B":"AP8A"}"#,
            r#"{"BS":["","AQ=="]}"#,
            r#"{"Q":"1"}"#,
            r#"{"S":1}"#,
            r#"{"N":1}"#,
            r#"{"N":null}"#,
            r#"{"B":"!"}"#,
            r#"{"B":1}"#,
            r#"{"BS":["AQ==","!"]}"#,
            r#"{"BS":"AQ=="}"#,
            r#"{"BS":[1]}"#,
            r#"{"BOOL":"true"}"#,
            r#"{"SS":"x"}"#,
            r#"{"SS":[1]}"#,
            r#"{"NS":["1",{}]}"#,
            r#"{"S":"a","N":"1"}"#,
            r#"{}"#,
            r#"[]"#,
            r#""S""#,
            r#"{"M":[]}"#,
            r#"{"M":{"a":{"Q":1}}}"#,
            r#"{"M":{"a":{"L":[{"S":"x"},{"B":"!"}]}}}"#,
            r#"{"L":{}}"#,
            r#"{"L":[{"S":"x"},{}]}"#,
            r#"{"L":[{"L":[{"N":"1"},{"QQ":"x"}]}]}"#,
            r#"{"L":[{"M":{"x":{"S":1}}}]}"#,
        ];
        let mut bodies: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"Count":1,"Items":[{{"pk":{{"S":"k"}},"a":{v}}}]}}"#))
            .collect();
        bodies.extend(
            [
                r#"{"Items":[{"dup":{"S":"first"},"dup":{"S":"second"}}]}"#,
                r#"{"Items":[{}]}"#,
                r#"{"Items":[[]]}"#,
                r#"{"Items":[1]}"#,
                r#"{"Items":null}"#,
                r#"{"Items":{}}"#,
                r#"{"Items":[],"Items":[]}"#,
                r#"{"Items":[{"pk":{"S":"a"}}]} trailing"#,
                r#"{"Items":[{"pk":{"S":"a"}}"#,
                r#"{"Count":1}"#,
                r#"{}"#,
                r#"null"#,
                r#""#,
                r#"["#,
                r#"[[{"pk":{"S":"a"}}]]"#,
                r#"[[],1]"#,
                r#"{"Items":[],"Count":"x"}"#,
                r#"{"Items":[],"Count":1,"Count":2}"#,
                r#"{"Items":[],"LastEvaluatedKey":{"pk":{"Q":"k"}}}"#,
                r#"{"Items":[],"LastEvaluatedKey":{"pk":{"S":1}}}"#,
                r#"{"Items":[],"LastEvaluatedKey":null,"ConsumedCapacity":{"CapacityUnits":"x"}}"#,
                r#"{"Items":[{"a":{"S":1}}],"Count":"x"}"#,
            ]
            .map(str::to_owned),
        );
        for body in bodies {
            same(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            ..Default::default()
        })]

        /// Any page of items, and any prefix of it, gives what the reference parser gives:
        /// the same items or the same error.
        #[test]
        fn pages_parse_as_they_did(
            items in proptest::collection::vec(crate::convert::arbitrary::item(), 0..4),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let json: Vec<String> = items
                .iter()
                .map(|i| crate::convert::json::value_to_json(&AttributeValue::M(i.clone())).unwrap())
                .map(|j| serde_json::from_str::<serde_json::Value>(&j).unwrap()["M"].to_string())
                .collect();
            let body = format!(
                r#"{{"Count":{},"Items":[{}],"ScannedCount":9,"LastEvaluatedKey":{{"pk":{{"S":"k"}}}},"ConsumedCapacity":{{"CapacityUnits":1.5}}}}"#,
                items.len(),
                json.join(",")
            );
            let (new, old, _) = both(body.as_bytes());
            proptest::prop_assert_eq!(new.as_ref().map(|page| &page.4), Ok(&items));
            proptest::prop_assert_eq!(new, old);
            let at = cut.index(body.len());
            proptest::prop_assert_eq!(same(&body.as_bytes()[..at]), Ok(()));
        }

        /// Random text fails (or parses) as it did.
        #[test]
        fn random_text_parses_as_it_did(text in "\\PC{0,120}|[{}\\[\\]\":,SNBLMbool0-9 ]{0,120}") {
            proptest::prop_assert_eq!(same(text.as_bytes()), Ok(()));
        }
    }
}
