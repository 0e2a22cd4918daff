//! `ddbsnap describe`: what a snapshot of a table would read and cost, before running it.
//!
//! Everything comes from DescribeTable and DescribeContinuousBackups; nothing is scanned. The
//! estimate uses DynamoDB's Scan pricing: a Scan consumes one read unit per 4 KB read with
//! strongly consistent reads, half of that with eventually consistent ones, whatever a filter
//! keeps, so a filtered or incremental pull costs as much as a full one.

use serde::{Deserialize, Serialize};

use crate::aws::AwsContext;
use crate::error::{Error, Result};
use crate::plan::auto_segments;
use crate::table::TableInfo;
use crate::throttle::{ReadBudget, scan_page_rcu};

/// What `describe` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Description {
    /// Keys, billing mode, capacity, item count, size and indexes.
    pub table: TableInfo,
    /// Point-in-time recovery status (`ENABLED`, `DISABLED`), or why it is unknown.
    pub point_in_time_recovery: String,
    /// The index the estimate is for, if not the table.
    pub index: Option<String>,
    /// Segments a snapshot would use by default.
    pub segments: u32,
    /// The read budget a snapshot would use.
    pub read_budget: ReadBudget,
    /// Read units a full Scan consumes (from the approximate size).
    pub full_scan_rcu: f64,
    /// Seconds a full Scan takes at the read budget.
    pub full_scan_seconds: f64,
    /// Whether the estimate assumes strongly consistent reads.
    pub consistent_read: bool,
    /// The table's DynamoDB stream (what `sync` reads), when it has one.
    pub stream: Option<crate::source::stream::status::StreamSummary>,
    /// Why the stream could not be described (it is then left out), e.g. a permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_unknown: Option<String>,
    /// A reminder of where the figures come from.
    pub note: String,
}

/// Describe `table` (or its `index`) and estimate a full Scan at `fraction` of its capacity.
pub(crate) async fn describe(
    aws: &AwsContext,
    table: &str,
    index: Option<&str>,
    fraction: f64,
    max_rcu: Option<f64>,
    consistent_read: bool,
) -> Result<Description> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid(format!(
            "--read-fraction must be greater than 0 and at most 1, got {fraction}"
        )));
    }
    let info = TableInfo::describe(aws, table).await?;
    let size = match index {
        Some(name) => info.index(name)?.size_bytes,
        None => info.size_bytes,
    };
    let read_budget = ReadBudget::plan_for(&info, index, fraction, max_rcu)
        .unwrap_or_else(|| ReadBudget::plan(&info, fraction, max_rcu));
    let full_scan_rcu = scan_page_rcu(size.unwrap_or(0).max(0) as u64, consistent_read);
    let pitr = match aws
        .dynamodb
        .describe_continuous_backups()
        .table_name(&info.name)
        .send()
        .await
    {
        Ok(out) => out
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map_or("unknown".to_owned(), |s| s.as_str().to_owned()),
        Err(e) => format!(
            "unknown ({})",
            aws.classify("DescribeContinuousBackups", &info.name, e)
        ),
    };
    let (stream, stream_unknown) =
        match crate::source::stream::status::summary(aws, &info.name).await {
            Ok(stream) => (stream, None),
            Err(e) => (None, Some(e.to_string())),
        };
    Ok(Description {
        stream,
        stream_unknown,
        point_in_time_recovery: pitr,
        index: index.map(str::to_owned),
        segments: auto_segments(size),
        full_scan_seconds: full_scan_rcu / read_budget.rcu_per_second.max(1e-9),
        read_budget,
        full_scan_rcu,
        consistent_read,
        note: "item count and size are DynamoDB's approximations, refreshed about every 6 \
               hours; a filtered Scan reads (and pays for) every item all the same"
            .to_owned(),
        table: info,
    })
}

impl Description {
    /// The description as a few lines of text.
    pub(crate) fn render(&self) -> String {
        let t = &self.table;
        let keys = |keys: &[crate::table::KeyAttribute]| {
            keys.iter()
                .map(|k| {
                    let kind = serde_json::to_value(k.attribute_type)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    format!("{} ({kind}, {})", k.name, k.key_type)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let capacity = |c: &crate::table::ReadCapacity| {
            let mut parts = Vec::new();
            if let Some(r) = c.provisioned_rcu {
                parts.push(format!("{r} RCU provisioned"));
            }
            if let Some(r) = c.on_demand_max {
                parts.push(format!("on-demand max {r} RCU/s"));
            }
            if let Some(r) = c.warm_per_second {
                parts.push(format!("warm {r} RCU/s"));
            }
            if parts.is_empty() {
                "no declared read capacity".to_owned()
            } else {
                parts.join(", ")
            }
        };
        let mut out = vec![
            format!("table         {}", t.name),
            format!("key           {}", keys(&t.key_schema)),
            format!(
                "billing       {} ({})",
                t.billing_mode,
                capacity(&t.capacity)
            ),
            format!(
                "items         ~{} ({:.1} MiB)",
                t.item_count.unwrap_or(0),
                t.size_bytes.unwrap_or(0) as f64 / (1 << 20) as f64
            ),
            format!("PITR          {}", self.point_in_time_recovery),
            format!("stream        {}", self.stream_line()),
        ];
        for i in &t.indexes {
            out.push(format!(
                "index         {} ({}, {}): {}; ~{} items, {:.1} MiB{}",
                i.name,
                if i.is_global() { "global" } else { "local" },
                i.projection,
                keys(&i.key_schema),
                i.item_count.unwrap_or(0),
                i.size_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
                i.capacity
                    .as_ref()
                    .map(|c| format!("; {}", capacity(c)))
                    .unwrap_or_default()
            ));
        }
        let label = match &self.index {
            Some(index) => format!("scan of {index}"),
            None => "full scan".to_owned(),
        };
        out.push(format!(
            "{label:<13} ~{:.0} RCU ({} reads) in ~{} at {}, {} segments",
            self.full_scan_rcu,
            if self.consistent_read {
                "strongly consistent"
            } else {
                "eventually consistent"
            },
            duration(self.full_scan_seconds),
            self.read_budget.describe(),
            self.segments
        ));
        out.push(format!("note          {}", self.note));
        out.join("\n")
    }
}

impl Description {
    /// The stream, as `describe` shows it: its view type, shards and oldest record.
    fn stream_line(&self) -> String {
        let Some(s) = &self.stream else {
            return match &self.stream_unknown {
                Some(why) => format!("unknown ({why})"),
                None => "none (sync needs one with NEW_AND_OLD_IMAGES or NEW_IMAGE)".to_owned(),
            };
        };
        let usable = match s.view_type.as_str() {
            "NEW_AND_OLD_IMAGES" | "NEW_IMAGE" => "",
            _ => "; sync needs NEW_AND_OLD_IMAGES or NEW_IMAGE",
        };
        let oldest = s
            .oldest_record_age_seconds
            .map_or("no records".to_owned(), |a| {
                format!("oldest record {} old", duration(a))
            });
        format!(
            "{} ({} shards, {} open; {oldest}){usable}",
            s.view_type, s.shards, s.open_shards
        )
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.ceil() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
