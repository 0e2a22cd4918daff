//! Positions: where each part of a run's source stands (a Scan segment after its
//! LastEvaluatedKey, a file after its first N items), as the checkpoint keeps them and as each
//! page reports them. A leaf: sources make them, the lanes and the checkpoint keep them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::convert::Item;
use crate::convert::json::{item_from_json, to_json};
use crate::error::AttrPath;

/// The key under which checkpoints written before [`Position::Lines`] existed kept a file
/// source's line count (`{"state":"after","key":{"ddbsnap_line":{"N":"5"}}}`).
const LEGACY_LINE_KEY: &str = "ddbsnap_line";

/// Where one part of a run's source stands, counting only items in closed data files: what
/// the checkpoint keeps per part, and what each page says its part is at after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum Position {
    /// No item of the part is in a closed file yet.
    Start,
    /// A Scan segment: every item up to this LastEvaluatedKey is in closed files; the scan
    /// continues after it.
    After {
        /// The LastEvaluatedKey, as DynamoDB JSON.
        key: StartKey,
    },
    /// The first `lines` items of a file source (an export's data file, the input of `apply`)
    /// are in closed files; reading continues after them.
    Lines {
        /// Items of the source already converted.
        lines: u64,
    },
    /// A DynamoDB stream: where each of its shards stands, every record up to there being in
    /// closed files.
    Stream {
        /// Each shard's cursor, by shard id.
        shards: StreamCursor,
    },
    /// Every item of the part is in closed files.
    Done,
}

/// Where each shard of a DynamoDB stream stands, by shard id: what a stream run starts from,
/// what each of its pages leaves, and what the table records once it is committed.
pub(crate) type StreamCursor = std::collections::BTreeMap<String, ShardCursor>;

/// Where reading one shard of a stream continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardCursor {
    /// From its first record still in the stream (TRIM_HORIZON).
    Start,
    /// After the record with this sequence number (up to 40 digits, kept as text).
    After(String),
    /// A closed shard read to its end.
    Done,
}

impl ShardCursor {
    /// How far along the shard `self` is against `other`: its start, then its records in
    /// sequence-number order, then its end.
    pub(crate) fn order(&self, other: &ShardCursor) -> std::cmp::Ordering {
        let rank = |c: &ShardCursor| match c {
            ShardCursor::Start => 0,
            ShardCursor::After(_) => 1,
            ShardCursor::Done => 2,
        };
        match (self, other) {
            (ShardCursor::After(a), ShardCursor::After(b)) => sequence_order(a, b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

/// The order of two sequence numbers of one shard (decimal digits, up to 40: compared as
/// numbers, not as text).
pub(crate) fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A LastEvaluatedKey, serialized as DynamoDB JSON (`{"pk":{"S":"a"},"n":{"N":"1"}}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StartKey(pub Item);

impl Serialize for StartKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        let mut map = serde_json::Map::new();
        for name in names {
            let mut path = AttrPath::default();
            path.push_field(name);
            let value = to_json(&self.0[name], &mut path).map_err(serde::ser::Error::custom)?;
            map.insert(name.clone(), value);
        }
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StartKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let item = item_from_json(&map).map_err(serde::de::Error::custom)?;
        Ok(StartKey(item))
    }
}

impl Position {
    /// The items of a file source already converted: `None` when all are (the part is done).
    /// Reads the line count of checkpoints written by earlier versions too; a Scan key here
    /// means the checkpoint is not a file conversion's.
    pub(crate) fn lines_done(&self) -> Option<std::result::Result<u64, ()>> {
        use aws_sdk_dynamodb::types::AttributeValue as AV;
        match self {
            Position::Start => Some(Ok(0)),
            Position::Lines { lines } => Some(Ok(*lines)),
            Position::Done => None,
            Position::Stream { .. } => Some(Err(())),
            Position::After { key } => Some(match key.0.get(LEGACY_LINE_KEY) {
                Some(AV::N(n)) if key.0.len() == 1 => n.parse().map_err(|_| ()),
                _ => Err(()),
            }),
        }
    }

    /// Where a page leaves a Scan segment: after its LastEvaluatedKey, or done on its last page.
    pub(crate) fn after_key(key: Option<Item>) -> Self {
        match key {
            Some(key) => Position::After { key: StartKey(key) },
            None => Position::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_cursors_order_by_sequence_number_as_numbers() {
        use std::cmp::Ordering::*;
        let after = |s: &str| ShardCursor::After(s.into());
        assert_eq!(after("9").order(&after("10")), Less);
        assert_eq!(after("0010").order(&after("10")), Equal);
        assert_eq!(
            after("4000000000000000000000000000000000000001").order(&after("999")),
            Greater
        );
        assert_eq!(ShardCursor::Start.order(&after("1")), Less);
        assert_eq!(ShardCursor::Done.order(&after("99")), Greater);
        assert_eq!(ShardCursor::Done.order(&ShardCursor::Done), Equal);
    }

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use std::collections::HashMap;

    #[test]
    fn positions_round_trip_every_key_type() {
        let key = StartKey(HashMap::from([
            ("pk".to_owned(), AV::S("a \"quoted\" ключ".into())),
            (
                "sk".to_owned(),
                AV::N("12345678901234567890123456789012345678".into()),
            ),
            ("b".to_owned(), AV::B(Blob::new(vec![0, 255, 10, 13]))),
        ]));
        let positions = vec![
            Position::Start,
            Position::After { key: key.clone() },
            Position::Done,
        ];
        let text = serde_json::to_string(&positions).unwrap();
        assert!(text.contains(r#""sk":{"N":"12345678901234567890123456789012345678"}"#));
        let back: Vec<Position> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, positions);
    }

    #[test]
    fn rejects_unknown_key_types() {
        let bad = r#"{"state":"after","key":{"pk":{"X":"1"}}}"#;
        assert!(serde_json::from_str::<Position>(bad).is_err());
    }

    #[test]
    fn file_positions_read_old_and_new_checkpoints() {
        let new = serde_json::to_string(&Position::Lines { lines: 7 }).unwrap();
        assert_eq!(new, r#"{"state":"lines","lines":7}"#);
        let old = r#"{"state":"after","key":{"ddbsnap_line":{"N":"7"}}}"#;
        for text in [new.as_str(), old] {
            let position: Position = serde_json::from_str(text).unwrap();
            assert_eq!(position.lines_done(), Some(Ok(7)));
        }
        let scan = r#"{"state":"after","key":{"pk":{"S":"a"}}}"#;
        let position: Position = serde_json::from_str(scan).unwrap();
        assert_eq!(position.lines_done(), Some(Err(())));
        assert_eq!(Position::Done.lines_done(), None);
        assert_eq!(Position::Start.lines_done(), Some(Ok(0)));
    }
}
