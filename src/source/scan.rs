//! Segmented parallel Scan.
//!
//! One task per segment (Segment/TotalSegments), at most `concurrency` running at once, each
//! paging with LastEvaluatedKey until DynamoDB returns none, with ReturnConsumedCapacity=TOTAL.
//! Pages go into a bounded channel, so a slow writer slows the scan down instead of growing
//! memory. Tasks do no conversion: they only move SDK pages along.

use std::sync::Arc;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use tokio::sync::{Semaphore, mpsc};

use crate::aws::AwsContext;
use crate::convert::Item;
use crate::error::Result;
use crate::progress::{Progress, ProgressEvent};

/// One Scan response.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) items: Vec<Item>,
    pub(crate) scanned: u64,
    pub(crate) consumed_rcu: f64,
}

/// What flows from the scan tasks to the conversion thread. The conversion thread commits only
/// after [`Msg::End`]; a channel closed without it means the scan failed.
#[derive(Debug)]
pub(crate) enum Msg {
    Page(Page),
    End,
}

/// What one segment scan needs.
#[derive(Clone)]
pub(crate) struct ScanJob {
    pub(crate) aws: AwsContext,
    pub(crate) table: Arc<str>,
    pub(crate) total_segments: u32,
    pub(crate) consistent_read: bool,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) tx: mpsc::Sender<Msg>,
    pub(crate) progress: Arc<dyn Progress>,
}

/// How a segment task ended without error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// Every page was read and handed over.
    Done,
    /// The receiving side is gone (it failed; its error is the one to report).
    Stopped,
}

impl ScanJob {
    /// Scan one segment to its end.
    pub(crate) async fn run(self, segment: u32) -> Result<SegmentEnd> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| crate::error::Error::Internal("scan semaphore closed".into()))?;
        let mut start_key: Option<Item> = None;
        loop {
            let out = self
                .aws
                .dynamodb
                .scan()
                .table_name(&*self.table)
                .segment(segment as i32)
                .total_segments(self.total_segments as i32)
                .consistent_read(self.consistent_read)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| self.aws.classify("Scan", &self.table, e))?;
            let consumed_rcu = out
                .consumed_capacity
                .as_ref()
                .and_then(|c| c.capacity_units)
                .unwrap_or(0.0);
            let items = out.items.unwrap_or_default();
            let scanned = out.scanned_count.max(0) as u64;
            self.progress.event(&ProgressEvent::Page {
                segment,
                items: items.len() as u64,
                scanned,
                consumed_rcu,
            });
            let page = Page {
                items,
                scanned,
                consumed_rcu,
            };
            if self.tx.send(Msg::Page(page)).await.is_err() {
                return Ok(SegmentEnd::Stopped);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(SegmentEnd::Done),
            }
        }
    }
}
