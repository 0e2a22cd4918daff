//! Scan responses without the SDK's deserializer.
//!
//! The SDK still signs, sends and classifies every request (retries, errors, endpoints), but for
//! a successful Scan, [`TakeBody`] takes the raw JSON body away before the SDK deserializes it
//! and hands it an empty `{}` instead. The scan task then reads only the small fields it needs
//! (counts, LastEvaluatedKey, ConsumedCapacity) and passes the bytes on; the items are parsed on
//! blocking threads by [`parse_items`], straight into `AttributeValue`s with serde_json.
//! This moves the largest CPU cost of a snapshot (parsing) off the network tasks and makes it
//! cheaper (measured in `scripts/bench`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::convert::Item;

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

/// Read a taken body to the end and check it against its `x-amz-crc32` (as the AWS SDKs that
/// deserialize DynamoDB responses do): a body damaged on the way is an error, to be retried,
/// never data.
pub(crate) async fn collect_checked(taken: Taken) -> Result<Bytes, BoxError> {
    let bytes = collect(taken.body).await?;
    if let Some(expected) = taken.crc32 {
        let actual = crc32fast::hash(&bytes);
        if actual != expected {
            return Err(format!(
                "the response body does not match its x-amz-crc32 header ({actual} instead \
                 of {expected}): damaged on the way"
            )
            .into());
        }
    }
    Ok(bytes)
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

/// Read a taken body to the end.
async fn collect(body: SdkBody) -> Result<Bytes, BoxError> {
    Ok(aws_smithy_types::byte_stream::ByteStream::new(body)
        .collect()
        .await?
        .into_bytes())
}

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

/// `ConsumedCapacity` of a response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Consumed {
    #[serde(default)]
    pub(crate) capacity_units: Option<f64>,
}

#[derive(Deserialize)]
struct ScanItems {
    #[serde(default, rename = "Items")]
    items: Vec<RawItem>,
}

/// Parse the small fields of a Scan response body.
pub(crate) fn parse_head(body: &[u8]) -> Result<ScanHead, serde_json::Error> {
    serde_json::from_slice(body)
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
                    let next = seq
                        .next_element::<Value>()
                        .map_err(|e| de::Error::custom(nest(&format!("[{}]", out.len()), &e)))?;
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
                        return Err(de::Error::custom(format!("{UNKNOWN_MESSAGE} ('{other}')")));
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

const UNKNOWN_MESSAGE: &str = "has a DynamoDB attribute type this version of ddbsnap does not \
     know; upgrade ddbsnap or exclude the attribute with a projection";

thread_local! {
    /// Set when parsing met a type tag it does not know (the error says where).
    static UNKNOWN_TYPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Prefix an inner error with the attribute path part it happened under.
fn nest(part: &str, inner: &dyn fmt::Display) -> String {
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

/// Parse the items of a Scan response body.
pub(crate) fn parse_items(body: &[u8]) -> Result<Vec<Item>, ParseError> {
    UNKNOWN_TYPE.with(|f| f.set(false));
    match serde_json::from_slice::<ScanItems>(body) {
        Ok(page) => Ok(page.items.into_iter().map(|i| i.0).collect()),
        Err(e) if UNKNOWN_TYPE.with(|f| f.replace(false)) => {
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
    use crate::error::AttrPath;

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
        assert_eq!(parse_items(body.as_bytes()).unwrap(), vec![item]);
        let head = parse_head(body.as_bytes()).unwrap();
        assert_eq!(head.scanned_count, 7);
        assert_eq!(head.consumed_capacity.unwrap().capacity_units, Some(2.5));
        assert_eq!(
            head.last_evaluated_key.unwrap().0,
            [("pk".to_string(), AttributeValue::S("k".into()))].into()
        );
        let empty = parse_head(b"{}").unwrap();
        assert!(empty.last_evaluated_key.is_none());
        assert!(parse_items(b"{}").unwrap().is_empty());
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
}
