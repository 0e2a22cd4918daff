//! The lines of an export's data files, and the change records of an incremental export as
//! rows of a change log: what `_op`, `_write_time` and `_old` say (see [`CHANGE_COLUMNS`]).

use aws_sdk_dynamodb::types::AttributeValue;

use crate::convert::json::item_from_json;
use crate::convert::{Item, Rows};
use crate::error::{Error, Result};

/// How an export's lines are written, as its summary says.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LineFormat {
    /// Amazon Ion text, not DynamoDB JSON.
    pub(super) ion: bool,
    /// Incremental records carry the old image too (`NEW_AND_OLD_IMAGES`): a new image
    /// without an old one is an insert, not a put.
    pub(super) old_images: bool,
}

/// Columns a change log adds to the items' own attributes (`_seq`, a stream record's sequence
/// number, only in the change log of a stream).
pub const CHANGE_COLUMNS: [&str; 4] = ["_op", "_write_time", "_old", "_seq"];

/// One line of a data file to a row: `{"Item":{...}}` (full export) is the item itself; an
/// incremental record `{"Metadata":{"WriteTimestampMicros":...},"Keys":{...},"NewImage":{...},
/// "OldImage":{...}}` becomes a change-log row: the keys and the new image as columns, `_op`
/// (`insert` / `update` / `delete` when the old image tells, `put` / `delete` otherwise),
/// `_write_time` (microseconds since 1970, from a bare number or `{"N":...}`) and `_old` (the
/// old image as a map, when there is one). The row is appended to `rows`.
pub(super) fn parse_line(line: &[u8], format: LineFormat, rows: &mut Rows) -> Result<()> {
    if !format.ion
        && line.starts_with(br#"{"Item":"#)
        && crate::source::raw::parse_full_line(line, rows)
    {
        // A full export's line, as AWS writes it: straight into the rows (the Scan parser).
        // A line this does not take goes the general way, which gives its error.
        return Ok(());
    }
    let line =
        std::str::from_utf8(line).map_err(|e| Error::invalid(format!("not UTF-8 text ({e})")))?;
    rows.push_item(&parse_any_line(line, format)?)
}

/// [`parse_line`] through a `serde_json::Value`: any line, any format.
pub(super) fn parse_any_line(line: &str, format: LineFormat) -> Result<Item> {
    let value: serde_json::Value = if format.ion {
        crate::source::ion::line_to_json(line)?
    } else {
        serde_json::from_str(line).map_err(|e| Error::invalid(format!("not JSON: {e}")))?
    };
    let map = |v: Option<&serde_json::Value>, what: &str| -> Result<Option<Item>> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Object(o)) => item_from_json(o).map(Some),
            Some(_) => Err(Error::invalid(format!("\"{what}\" is not an object"))),
        }
    };
    if let Some(item) = map(value.get("Item"), "Item")? {
        return Ok(item);
    }
    let keys = map(value.get("Keys"), "Keys")?
        .ok_or_else(|| Error::invalid("neither an \"Item\" nor a \"Keys\" object"))?;
    let micros = match value
        .get("Metadata")
        .and_then(|m| m.get("WriteTimestampMicros"))
    {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::Object(o)) => o
            .get("N")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid("WriteTimestampMicros is not {\"N\": ...}"))?,
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Err(Error::invalid("no Metadata.WriteTimestampMicros")),
    };
    let new = map(value.get("NewImage"), "NewImage")?;
    let old = map(value.get("OldImage"), "OldImage")?;
    let op = match (&new, &old) {
        (None, _) => "delete",
        (Some(_), Some(_)) => "update",
        (Some(_), None) if format.old_images => "insert",
        (Some(_), None) => "put",
    };
    let mut row = new.unwrap_or_default();
    for name in CHANGE_COLUMNS {
        if row.contains_key(name) {
            return Err(Error::invalid(format!(
                "the item has an attribute '{name}', which the change log uses for itself"
            )));
        }
    }
    row.extend(keys);
    row.insert("_op".into(), AttributeValue::S(op.into()));
    row.insert("_write_time".into(), AttributeValue::N(micros));
    if let Some(old) = old {
        row.insert("_old".into(), AttributeValue::M(old));
    }
    Ok(row)
}
