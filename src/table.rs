//! What DescribeTable says about a table, as much as ddbsnap needs: its key schema, size,
//! read capacity and indexes. A leaf: everything that plans, reads or publishes a run uses it,
//! and it uses none of them.

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// The read capacity of a global index; `None` for a local index.
    pub capacity: Option<ReadCapacity>,
    /// The index's own key: partition key first, then sort key.
    #[serde(default)]
    pub key_schema: Vec<KeyAttribute>,
    /// Projection type: `ALL`, `KEYS_ONLY` or `INCLUDE`.
    #[serde(default)]
    pub projection: String,
    /// Approximate item count.
    #[serde(default)]
    pub item_count: Option<i64>,
    /// Approximate size in bytes.
    #[serde(default)]
    pub size_bytes: Option<i64>,
}

impl IndexInfo {
    /// True for a global secondary index (it has its own capacity, and no consistent reads).
    pub fn is_global(&self) -> bool {
        self.capacity.is_some()
    }
}

impl TableInfo {
    /// DescribeTable and keep what matters.
    pub async fn describe(aws: &AwsContext, table: &str) -> Result<Self> {
        check_table_name(table)?;
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
        let keys = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            let mut keys: Vec<KeyAttribute> = elements
                .iter()
                .map(|k| KeyAttribute {
                    name: k.attribute_name().to_owned(),
                    key_type: k.key_type().as_str().to_owned(),
                    attribute_type: kind_of(k.attribute_name()),
                })
                .collect();
            keys.sort_by_key(|k| k.key_type != KeyType::Hash.as_str());
            keys
        };
        let projection = |p: Option<&aws_sdk_dynamodb::types::Projection>| {
            p.and_then(|p| p.projection_type())
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default()
        };
        let key_schema = keys(desc.key_schema());
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
                    key_schema: keys(g.key_schema()),
                    projection: projection(g.projection()),
                    item_count: g.item_count(),
                    size_bytes: g.index_size_bytes(),
                })
                .chain(desc.local_secondary_indexes().iter().map(|l| IndexInfo {
                    name: l.index_name().unwrap_or_default().to_owned(),
                    capacity: None,
                    key_schema: keys(l.key_schema()),
                    projection: projection(l.projection()),
                    item_count: l.item_count(),
                    size_bytes: l.index_size_bytes(),
                }))
                .collect(),
            billing_mode,
        })
    }
}

impl TableInfo {
    /// The index named `name`, or a clear error listing the indexes there are.
    pub fn index(&self, name: &str) -> Result<&IndexInfo> {
        self.indexes.iter().find(|i| i.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.indexes.iter().map(|i| i.name.as_str()).collect();
            Error::IndexNotFound {
                table: self.name.clone(),
                index: name.to_owned(),
                known: if known.is_empty() {
                    "it has no secondary indexes".to_owned()
                } else {
                    format!("its indexes are: {}", known.join(", "))
                },
            }
        })
    }

    /// The key attributes of what is scanned: the table's, then the index's own (if any).
    pub fn scan_keys(&self, index: Option<&IndexInfo>) -> Vec<KeyAttribute> {
        let mut keys = self.key_schema.clone();
        for k in index.map(|i| i.key_schema.as_slice()).unwrap_or_default() {
            if !keys.iter().any(|t| t.name == k.name) {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// A table name DynamoDB would refuse, refused first with a line that says why (DynamoDB's
/// own ValidationException does not): 3 to 255 letters, digits, `_`, `-` and `.`; an ARN is
/// left to DynamoDB.
fn check_table_name(table: &str) -> Result<()> {
    let valid = (3..=255).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid || table.starts_with("arn:") {
        return Ok(());
    }
    let count = table.chars().count();
    let shown: String = table.chars().take(40).collect();
    let more = if count > 40 { "..." } else { "" };
    Err(Error::invalid(format!(
        "'{shown}{more}' ({count} characters) is not a DynamoDB table name: names are 3 to 255 \
         letters, digits, '_', '-' and '.'; or give the table's ARN"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked_before_dynamodb() {
        for good in [
            "abc",
            "Orders_2026.v-1",
            &"a".repeat(255),
            "arn:aws:dynamodb:us-east-1:1:table/t",
        ] {
            assert!(check_table_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "my table", "orders/2026", &"a".repeat(256), "ordérs"] {
            let e = check_table_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        let long = check_table_name(&"a".repeat(300)).unwrap_err().to_string();
        assert!(
            long.contains("(300 characters)") && long.len() < 200,
            "{long}"
        );
    }
}
