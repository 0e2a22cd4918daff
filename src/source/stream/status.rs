//! What `describe` shows of a table's stream.

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde::{Deserialize, Serialize};

use super::{Shard, current, shards};
use crate::aws::AwsContext;
use crate::error::Result;

/// A table's stream as `describe` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamSummary {
    /// Its ARN.
    pub arn: String,
    /// Its view type; `sync` needs NEW_AND_OLD_IMAGES or NEW_IMAGE.
    pub view_type: String,
    /// Shards the stream lists, and how many of them are open.
    pub shards: usize,
    pub open_shards: usize,
    /// Age of the oldest record it holds (at most 24 hours), when it holds any.
    pub oldest_record_age_seconds: Option<f64>,
}

/// The stream of `table` for `describe`: its view type, shards and the age of its oldest
/// record (from its oldest shard's first records); `None` when it has none.
pub(crate) async fn summary(aws: &AwsContext, table: &str) -> Result<Option<StreamSummary>> {
    let Some(info) = current(aws, table).await? else {
        return Ok(None);
    };
    let shards = shards(aws, &info.arn, table).await?;
    let oldest = match shards.first() {
        Some(first) => first_record_time(aws, &info.arn, first, table).await?,
        None => None,
    };
    let now = chrono::Utc::now();
    Ok(Some(StreamSummary {
        open_shards: shards.iter().filter(|s| !s.closed).count(),
        shards: shards.len(),
        oldest_record_age_seconds: oldest
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        view_type: info.view,
        arn: info.arn,
    }))
}

/// The approximate creation time of the first record of `shard` (its oldest): a few GetRecords
/// from its start; `None` when it holds none.
pub(crate) async fn first_record_time(
    aws: &AwsContext,
    arn: &str,
    shard: &Shard,
    table: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let start = aws
        .streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(&shard.id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map_err(|e| aws.classify("GetShardIterator", table, e))?;
    let mut iterator = start.shard_iterator().map(str::to_owned);
    for _ in 0..3 {
        let Some(at) = iterator.take() else {
            break;
        };
        let page = aws
            .streams
            .get_records()
            .shard_iterator(at)
            .limit(1)
            .send()
            .await
            .map_err(|e| aws.classify("GetRecords", table, e))?;
        if let Some(time) = page
            .records()
            .first()
            .and_then(|r| r.dynamodb())
            .and_then(|d| d.approximate_creation_date_time())
        {
            return Ok(chrono::DateTime::from_timestamp_millis(
                time.to_millis().unwrap_or(0),
            ));
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    Ok(None)
}
