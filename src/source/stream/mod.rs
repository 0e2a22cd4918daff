//! DynamoDB Streams: the change records of a table, read shard by shard.
//!
//! A stream keeps every insert, update and delete of its table for 24 hours, in shards. A
//! shard is open (new records go to it) or closed (it has an end); a shard that splits closes
//! and its children continue, so a key's changes are in order within a shard and across a
//! parent and its children once the parent is read to its end first. `shards` gives the
//! shards in that lineage order; `read` reads them into change-log rows.
//!
//! What a table has read is a [`StreamState`]: the stream's ARN and, per shard, where reading
//! continues ([`ShardCursor`]: from its start, after a sequence number, or done). It is
//! committed with the data it covers, so a crash before the commit reads the records again and
//! one after it never applies them twice.

pub(crate) mod read;
pub(crate) mod status;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::StreamViewType;
use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::error::{Error, Result};

pub use crate::cursor::ShardCursor;

/// What a table has read of its DynamoDB stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// The stream's ARN: a stream disabled and enabled again is a new one.
    pub arn: String,
    /// Where each shard stands, by shard id (shards read to their end stay until the stream
    /// drops them).
    pub shards: BTreeMap<String, ShardCursor>,
    /// When the stream's shards were listed for these positions: a stream keeps records 24
    /// hours, so positions older than that may have lost records, listed or not.
    pub listed_at: chrono::DateTime<chrono::Utc>,
}

/// How long a stream keeps its records.
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A table's current stream, as DescribeTable gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    /// `LatestStreamArn`.
    pub arn: String,
    /// Its view type (`NEW_AND_OLD_IMAGES` or `NEW_IMAGE`: the ones that rebuild items).
    pub view: String,
}

/// The command that gives `table` a stream whose records rebuild items.
fn enable_command(table: &str) -> String {
    format!(
        "aws dynamodb update-table --table-name {table} --stream-specification \
         StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
    )
}

/// The stream `table` has enabled now, whatever its view type; `None` when it has none.
pub(crate) async fn current(aws: &AwsContext, table: &str) -> Result<Option<StreamInfo>> {
    let described = aws
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws.classify("DescribeTable", table, e))?;
    let table_desc = described.table();
    let spec = table_desc.and_then(|t| t.stream_specification());
    let arn = table_desc.and_then(|t| t.latest_stream_arn());
    Ok(match (spec.filter(|s| s.stream_enabled()), arn) {
        (Some(spec), Some(arn)) => Some(StreamInfo {
            arn: arn.to_owned(),
            view: spec
                .stream_view_type()
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        }),
        _ => None,
    })
}

/// The latest stream of `table`, when its records rebuild items (their view type holds new
/// images); a one-line usage error that says how to enable one otherwise.
pub(crate) async fn latest(aws: &AwsContext, table: &str) -> Result<StreamInfo> {
    let Some(info) = current(aws, table).await? else {
        return Err(Error::invalid(format!(
            "table {table} has no DynamoDB stream, which sync reads; enable one that holds new \
             images: {} (or run sync with --enable-stream)",
            enable_command(table)
        )));
    };
    let view = info.view.clone();
    match StreamViewType::from(view.as_str()) {
        StreamViewType::NewAndOldImages | StreamViewType::NewImage => Ok(info),
        _ => Err(Error::invalid(format!(
            "the stream of table {table} has view type {view}, whose records cannot rebuild \
             items; a table has one stream: disable it (aws dynamodb update-table --table-name \
             {table} --stream-specification StreamEnabled=false), then enable one with \
             NEW_AND_OLD_IMAGES or NEW_IMAGE: {}",
            enable_command(table)
        ))),
    }
}

/// Give `table` a stream with new and old images (`--enable-stream`), and wait until
/// DescribeTable shows it.
pub(crate) async fn enable(aws: &AwsContext, table: &str) -> Result<StreamInfo> {
    use aws_sdk_dynamodb::types::StreamSpecification;
    let spec = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(|e| Error::Internal(format!("building the stream specification: {e}")))?;
    aws.dynamodb
        .update_table()
        .table_name(table)
        .stream_specification(spec)
        .send()
        .await
        .map_err(|e| aws.classify("UpdateTable", table, e))?;
    for _ in 0..120 {
        if let Ok(info) = latest(aws, table).await {
            return Ok(info);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(Error::invalid(format!(
        "table {table} shows no stream a minute after UpdateTable enabled one; run sync again \
         once DescribeTable shows LatestStreamArn"
    )))
}

/// One shard of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    /// Its id.
    pub id: String,
    /// The shard it split from, if any.
    pub parent: Option<String>,
    /// Its first sequence number.
    pub first: String,
    /// True when it has an end (no new records go to it).
    pub closed: bool,
}

/// Every shard of the stream `arn` (DescribeStream, page by page), in lineage order: a parent
/// before its children, otherwise by first sequence number.
pub(crate) async fn shards(aws: &AwsContext, arn: &str, table: &str) -> Result<Vec<Shard>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = aws
            .streams
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(after.take())
            .send()
            .await
            .map_err(|e| aws.classify("DescribeStream", table, e))?;
        let Some(description) = page.stream_description() else {
            break;
        };
        for shard in description.shards() {
            let range = shard.sequence_number_range();
            out.push(Shard {
                id: shard.shard_id().unwrap_or_default().to_owned(),
                parent: shard.parent_shard_id().map(str::to_owned),
                first: range
                    .and_then(|r| r.starting_sequence_number())
                    .unwrap_or_default()
                    .to_owned(),
                closed: range.and_then(|r| r.ending_sequence_number()).is_some(),
            });
        }
        match description.last_evaluated_shard_id() {
            Some(last) => after = Some(last.to_owned()),
            None => break,
        }
    }
    Ok(in_lineage_order(out))
}

/// `shards` with every parent before its children, otherwise by first sequence number
/// (compared as numbers: up to 40 digits).
pub(crate) fn in_lineage_order(mut shards: Vec<Shard>) -> Vec<Shard> {
    shards.sort_by(|a, b| (a.first.len(), &a.first, &a.id).cmp(&(b.first.len(), &b.first, &b.id)));
    let mut placed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let listed: std::collections::HashSet<String> = shards.iter().map(|s| s.id.clone()).collect();
    let mut out = Vec::with_capacity(shards.len());
    while !shards.is_empty() {
        let ready = shards
            .iter()
            .position(|s| {
                s.parent
                    .as_ref()
                    .is_none_or(|p| !listed.contains(p) || placed.contains(p))
            })
            // A cycle cannot happen in a real stream; take the first rather than loop.
            .unwrap_or(0);
        let shard = shards.remove(ready);
        placed.insert(shard.id.clone());
        out.push(shard);
    }
    out
}

/// Where a sync starting now reads: every shard listed from its start (TRIM_HORIZON), so no
/// change made after this call is missed, whatever the full load that follows sees.
pub(crate) fn from_the_start(
    arn: &str,
    shards: &[Shard],
    listed_at: chrono::DateTime<chrono::Utc>,
) -> StreamState {
    StreamState {
        arn: arn.to_owned(),
        shards: shards
            .iter()
            .map(|s| (s.id.clone(), ShardCursor::Start))
            .collect(),
        listed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, first: &str) -> Shard {
        Shard {
            id: id.into(),
            parent: parent.map(Into::into),
            first: first.into(),
            closed: false,
        }
    }

    #[test]
    fn parents_come_before_their_children() {
        let shards = vec![
            shard("c2", Some("p"), "300"),
            shard("c1", Some("p"), "9"),
            shard("gc", Some("c1"), "1000"),
            shard("p", None, "100"),
            shard("orphan", Some("gone"), "50"),
        ];
        let order: Vec<String> = in_lineage_order(shards).into_iter().map(|s| s.id).collect();
        let at = |id: &str| order.iter().position(|s| s == id).unwrap();
        assert!(at("p") < at("c1") && at("p") < at("c2") && at("c1") < at("gc"));
        assert_eq!(
            order[0], "orphan",
            "a parent the stream dropped does not hold it back"
        );
    }
}
