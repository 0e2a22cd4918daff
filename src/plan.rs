//! Planning a snapshot from DescribeTable: key schema, size, capacity and the segment count.

use aws_sdk_dynamodb::types::{
    BillingMode, KeyType, OnDemandThroughput, ProvisionedThroughputDescription, ScalarAttributeType,
};
use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::convert::KeyKind;
use crate::error::{Error, Result};

/// One key attribute of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// `HASH` (partition key) or `RANGE` (sort key).
    pub key_type: String,
    /// Scalar type (`S`, `N` or `B`).
    pub attribute_type: KeyKind,
}

/// What DescribeTable says about the table, as much as a snapshot needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Table ARN.
    pub arn: Option<String>,
    /// Partition key first, then sort key.
    pub key_schema: Vec<KeyAttribute>,
    /// Approximate item count (DynamoDB refreshes it about every six hours).
    pub item_count: Option<i64>,
    /// Approximate size in bytes (refreshed about every six hours).
    pub size_bytes: Option<i64>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// The table's read capacity.
    pub capacity: ReadCapacity,
    /// Secondary indexes and their read capacity.
    #[serde(default)]
    pub indexes: Vec<IndexInfo>,
}

/// What DescribeTable says about the read capacity of a table or a global index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCapacity {
    /// Provisioned read capacity units (provisioned tables only).
    pub provisioned_rcu: Option<i64>,
    /// Maximum read request units per second of an on-demand table or index, when set.
    pub on_demand_max: Option<i64>,
    /// Warm throughput: read units per second it is ready to serve, when reported.
    pub warm_per_second: Option<i64>,
}

impl ReadCapacity {
    fn from_parts(
        provisioned: bool,
        throughput: Option<&ProvisionedThroughputDescription>,
        on_demand: Option<&OnDemandThroughput>,
        warm_per_second: Option<i64>,
    ) -> Self {
        ReadCapacity {
            provisioned_rcu: throughput
                .filter(|_| provisioned)
                .and_then(|p| p.read_capacity_units())
                .filter(|&r| r > 0),
            on_demand_max: on_demand
                .and_then(|o| o.max_read_request_units())
                .filter(|&r| r > 0),
            warm_per_second: warm_per_second.filter(|&r| r > 0),
        }
    }
}

/// A secondary index. A global one has its own capacity; a local one shares the table's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// The read capacity of a global index; `None` for a local index.
    pub capacity: Option<ReadCapacity>,
}

impl TableInfo {
    /// DescribeTable and keep what matters.
    pub async fn describe(aws: &AwsContext, table: &str) -> Result<Self> {
        let out = aws
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| aws.classify("DescribeTable", table, e))?;
        let desc = out
            .table
            .ok_or_else(|| Error::Internal("DescribeTable returned no table".into()))?;
        let kind_of = |name: &str| {
            desc.attribute_definitions()
                .iter()
                .find(|d| d.attribute_name() == name)
                .map(|d| match d.attribute_type() {
                    ScalarAttributeType::N => KeyKind::N,
                    ScalarAttributeType::B => KeyKind::B,
                    _ => KeyKind::S,
                })
                .unwrap_or(KeyKind::S)
        };
        let mut key_schema: Vec<KeyAttribute> = desc
            .key_schema()
            .iter()
            .map(|k| KeyAttribute {
                name: k.attribute_name().to_owned(),
                key_type: k.key_type().as_str().to_owned(),
                attribute_type: kind_of(k.attribute_name()),
            })
            .collect();
        key_schema.sort_by_key(|k| k.key_type != KeyType::Hash.as_str());
        let billing_mode = desc
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .unwrap_or(&BillingMode::Provisioned)
            .as_str()
            .to_owned();
        // Indexes of an on-demand table are on-demand too, whatever throughput they report.
        let provisioned = billing_mode != BillingMode::PayPerRequest.as_str();
        Ok(TableInfo {
            name: desc.table_name().unwrap_or(table).to_owned(),
            arn: desc.table_arn().map(str::to_owned),
            key_schema,
            item_count: desc.item_count(),
            size_bytes: desc.table_size_bytes(),
            capacity: ReadCapacity::from_parts(
                provisioned,
                desc.provisioned_throughput(),
                desc.on_demand_throughput(),
                desc.warm_throughput()
                    .and_then(|w| w.read_units_per_second()),
            ),
            indexes: desc
                .global_secondary_indexes()
                .iter()
                .map(|g| IndexInfo {
                    name: g.index_name().unwrap_or_default().to_owned(),
                    capacity: Some(ReadCapacity::from_parts(
                        provisioned,
                        g.provisioned_throughput(),
                        g.on_demand_throughput(),
                        g.warm_throughput().and_then(|w| w.read_units_per_second()),
                    )),
                })
                .chain(desc.local_secondary_indexes().iter().map(|l| IndexInfo {
                    name: l.index_name().unwrap_or_default().to_owned(),
                    capacity: None,
                }))
                .collect(),
            billing_mode,
        })
    }
}

/// Bytes of table data per automatic segment.
pub const BYTES_PER_SEGMENT: i64 = 1 << 30;
/// Fewest automatic segments: enough parallelism to hide request latency on small tables.
pub const MIN_AUTO_SEGMENTS: u32 = 4;
/// Most automatic segments.
pub const MAX_AUTO_SEGMENTS: u32 = 1024;

/// The automatic segment count: one segment per GiB of table data (DescribeTable's
/// TableSizeBytes), at least 4 and at most 1024. Small and empty tables get 4 segments, so a
/// scan never fans out into hundreds of empty requests.
pub fn auto_segments(size_bytes: Option<i64>) -> u32 {
    let size = size_bytes.unwrap_or(0).max(0);
    let wanted = (size + BYTES_PER_SEGMENT - 1) / BYTES_PER_SEGMENT;
    (wanted.clamp(MIN_AUTO_SEGMENTS as i64, MAX_AUTO_SEGMENTS as i64)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_segments() {
        assert_eq!(auto_segments(None), 4);
        assert_eq!(auto_segments(Some(0)), 4);
        assert_eq!(auto_segments(Some(3 << 30)), 4);
        assert_eq!(auto_segments(Some((10 << 30) + 1)), 11);
        assert_eq!(auto_segments(Some(1 << 50)), 1024);
    }
}
