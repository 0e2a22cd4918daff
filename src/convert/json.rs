//! DynamoDB JSON (`{"S":"x"}`, `{"N":"1.5"}`, `{"B":"<base64>"}`, `{"M":{...}}`): the lossless
//! text form used for columns whose types conflict, and the format of native exports.
//!
//! Map keys are written in sorted order so the same value always gives the same text.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::error::{AttrPath, Error, Result};

/// DynamoDB JSON of one attribute value.
pub(crate) fn to_json(value: &AttributeValue, path: &mut AttrPath) -> Result<Value> {
    use AttributeValue as AV;
    let tagged = |tag: &str, v: Value| {
        let mut m = Map::new();
        m.insert(tag.to_owned(), v);
        Value::Object(m)
    };
    let b64 = |b: &Blob| Value::String(BASE64.encode(b.as_ref()));
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    Ok(match value {
        AV::S(s) => tagged("S", Value::String(s.clone())),
        AV::N(n) => tagged("N", Value::String(n.clone())),
        AV::B(b) => tagged("B", b64(b)),
        AV::Bool(b) => tagged("BOOL", Value::Bool(*b)),
        AV::Null(_) => tagged("NULL", Value::Bool(true)),
        AV::Ss(v) => tagged("SS", strings(v)),
        AV::Ns(v) => tagged("NS", strings(v)),
        AV::Bs(v) => tagged("BS", Value::Array(v.iter().map(b64).collect())),
        AV::L(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                path.push_index(i);
                out.push(to_json(v, path)?);
                path.pop();
            }
            tagged("L", Value::Array(out))
        }
        AV::M(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                path.push_field(k);
                out.insert(k.clone(), to_json(v, path)?);
                path.pop();
            }
            tagged("M", Value::Object(out))
        }
        other => return Err(super::rows::unknown_type(other, path)),
    })
}

/// DynamoDB JSON text of one attribute value.
pub(crate) fn to_json_string(value: &AttributeValue, path: &mut AttrPath) -> Result<String> {
    Ok(to_json(value, path)?.to_string())
}

/// Parse DynamoDB JSON of one attribute value.
pub fn from_json(value: &Value) -> Result<AttributeValue> {
    use AttributeValue as AV;
    let bad = |what: &str| Error::invalid(format!("invalid DynamoDB JSON: {what}"));
    let obj = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| bad("a value must be an object with exactly one type key"))?;
    let (tag, inner) = obj.iter().next().expect("one entry");
    let string = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("{tag} needs a string")))
    };
    let strings = |v: &Value| -> Result<Vec<String>> {
        v.as_array()
            .ok_or_else(|| bad(&format!("{tag} needs an array")))?
            .iter()
            .map(string)
            .collect()
    };
    let blob = |v: &Value| -> Result<Blob> {
        let s = v
            .as_str()
            .ok_or_else(|| bad(&format!("{tag} needs base64 text")))?;
        BASE64
            .decode(s)
            .map(Blob::new)
            .map_err(|e| bad(&format!("{tag}: {e}")))
    };
    Ok(match tag.as_str() {
        "S" => AV::S(string(inner)?),
        "N" => AV::N(string(inner)?),
        "B" => AV::B(blob(inner)?),
        "BOOL" => AV::Bool(
            inner
                .as_bool()
                .ok_or_else(|| bad("BOOL needs true/false"))?,
        ),
        "NULL" => AV::Null(true),
        "SS" => AV::Ss(strings(inner)?),
        "NS" => AV::Ns(strings(inner)?),
        "BS" => AV::Bs(
            inner
                .as_array()
                .ok_or_else(|| bad("BS needs an array"))?
                .iter()
                .map(blob)
                .collect::<Result<_>>()?,
        ),
        "L" => AV::L(
            inner
                .as_array()
                .ok_or_else(|| bad("L needs an array"))?
                .iter()
                .map(from_json)
                .collect::<Result<_>>()?,
        ),
        "M" => AV::M(
            inner
                .as_object()
                .ok_or_else(|| bad("M needs an object"))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json(v)?)))
                .collect::<Result<_>>()?,
        ),
        other => return Err(bad(&format!("unknown type key '{other}'"))),
    })
}

/// Parse a DynamoDB JSON item (`{"name": {"S": "x"}, ...}`); an error names the attribute.
pub(crate) fn item_from_json(object: &Map<String, Value>) -> Result<crate::convert::Item> {
    object
        .iter()
        .map(|(name, value)| {
            let value =
                from_json(value).map_err(|e| Error::invalid(format!("attribute '{name}': {e}")))?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// DynamoDB JSON text of one attribute value (`{"S":"x"}`).
pub fn value_to_json(value: &AttributeValue) -> Result<String> {
    to_json_string(value, &mut AttrPath::default())
}

/// Parse DynamoDB JSON text of one attribute value.
pub fn from_json_str(text: &str) -> Result<AttributeValue> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("invalid DynamoDB JSON: {e}")))?;
    from_json(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttributeValue as AV;

    #[test]
    fn every_type_round_trips() {
        let values = vec![
            AV::S("a\"b\u{1F600}".into()),
            AV::N("-1.5E+3".into()),
            AV::B(Blob::new(vec![0, 255, 0])),
            AV::Bool(false),
            AV::Null(true),
            AV::Ss(vec!["x".into(), "".into()]),
            AV::Ns(vec!["1".into()]),
            AV::Bs(vec![Blob::new(vec![]), Blob::new(vec![1])]),
            AV::L(vec![AV::Null(true), AV::S("s".into())]),
            AV::M([("k.1 x".to_string(), AV::L(vec![]))].into_iter().collect()),
        ];
        for v in values {
            let text = to_json_string(&v, &mut AttrPath::default()).unwrap();
            assert_eq!(from_json_str(&text).unwrap(), v, "{text}");
        }
        assert_eq!(
            to_json_string(&AV::B(Blob::new(vec![0, 1])), &mut AttrPath::default()).unwrap(),
            r#"{"B":"AAE="}"#
        );
    }

    #[test]
    fn rejects_malformed_json() {
        for text in [
            r#"{"X":"1"}"#,
            r#"{"S":1}"#,
            r#"{"S":"a","N":"1"}"#,
            "[]",
            r#"{"B":"!"}"#,
        ] {
            assert!(from_json_str(text).is_err(), "{text}");
        }
    }
}
