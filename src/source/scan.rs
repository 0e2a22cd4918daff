//! Segmented parallel Scan.
//!
//! One task per segment (Segment/TotalSegments), at most `concurrency` running at once, each
//! paging with LastEvaluatedKey until DynamoDB returns none, with ReturnConsumedCapacity=TOTAL
//! and a `Limit` sized by the shared [`Throttle`] (see [`crate::throttle`]).
//! Pages go into a bounded channel, so a slow writer slows the scan down instead of growing
//! memory. Tasks do no conversion: they only move SDK pages along.

use std::sync::Arc;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use tokio::sync::{Semaphore, mpsc};

use crate::aws::AwsContext;
use crate::convert::Item;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::throttle::{Throttle, backoff};

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
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) retry_timeout: Duration,
}

/// How a segment task ended without error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// Every page was read and handed over.
    Done,
    /// The receiving side is gone (it failed; its error is the one to report).
    Stopped,
}

/// Error codes DynamoDB uses when a request exceeded capacity or request limits.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];
/// Error codes of transient server-side failures.
const TRANSIENT_CODES: &[&str] = &["InternalServerError", "ServiceUnavailable"];
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(20);

enum Failure {
    Throttled,
    Transient,
    Fatal,
}

fn failure_kind<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Failure {
    match err {
        SdkError::ServiceError(se) => {
            let code = err.code().unwrap_or_default();
            if THROTTLING_CODES.contains(&code) {
                Failure::Throttled
            } else if TRANSIENT_CODES.contains(&code) || se.raw().status().is_server_error() {
                Failure::Transient
            } else {
                Failure::Fatal
            }
        }
        // Dropped connections, timeouts and garbled responses mid-scan: retry the page.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        _ => Failure::Fatal,
    }
}

impl ScanJob {
    /// Scan one segment to its end. Each page is paid for in the shared read budget; throttled
    /// and failed pages are retried (same ExclusiveStartKey) with full-jitter backoff until
    /// `retry_timeout` passes without a successful page.
    pub(crate) async fn run(self, segment: u32) -> Result<SegmentEnd> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| crate::error::Error::Internal("scan semaphore closed".into()))?;
        let no_sdk_retries = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled());
        let mut start_key: Option<Item> = None;
        loop {
            let mut attempt = 0u32;
            let mut failing_since: Option<Instant> = None;
            let out = loop {
                let (limit, estimate) = self.throttle.next_page();
                self.throttle.acquire(estimate).await;
                let sent = self
                    .aws
                    .dynamodb
                    .scan()
                    .table_name(&*self.table)
                    .segment(segment as i32)
                    .total_segments(self.total_segments as i32)
                    .consistent_read(self.consistent_read)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .limit(limit)
                    .set_exclusive_start_key(start_key.clone())
                    .customize()
                    .config_override(no_sdk_retries.clone())
                    .send()
                    .await;
                match sent {
                    Ok(out) => {
                        let actual = out
                            .consumed_capacity
                            .as_ref()
                            .and_then(|c| c.capacity_units)
                            .unwrap_or(0.0);
                        self.throttle
                            .settle(estimate, actual, out.scanned_count.max(0) as u64)
                            .await;
                        break out;
                    }
                    Err(err) => {
                        let kind = failure_kind(&err);
                        if matches!(kind, Failure::Fatal) {
                            return Err(self.aws.classify("Scan", &self.table, err));
                        }
                        if matches!(kind, Failure::Throttled) {
                            self.throttle.throttled();
                            self.progress.event(&ProgressEvent::Throttled { segment });
                        }
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.retry_timeout {
                            let detail = self.aws.classify("Scan", &self.table, err).to_string();
                            return Err(Error::GaveUp {
                                segment,
                                seconds: since.elapsed().as_secs(),
                                last: detail,
                            });
                        }
                        self.throttle.retried();
                        let wait = backoff(attempt, BACKOFF_BASE, BACKOFF_CAP, fastrand::f64());
                        attempt = attempt.saturating_add(1);
                        tokio::time::sleep(wait).await;
                    }
                }
            };
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
