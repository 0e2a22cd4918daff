//! Segmented parallel Scan.
//!
//! One task per segment (Segment/TotalSegments), at most `concurrency` running at once, each
//! paging with LastEvaluatedKey until DynamoDB returns none, with ReturnConsumedCapacity=TOTAL
//! and a `Limit` sized by the shared [`Throttle`] (see [`crate::throttle`]).
//! Pages go into a bounded channel, so a slow writer slows the scan down instead of growing
//! memory. Tasks do no conversion and no item parsing: they move raw response bodies along
//! (see [`super::raw`]), reading only the counts, LastEvaluatedKey and ConsumedCapacity.

use std::sync::Arc;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use tokio::sync::{Semaphore, mpsc};

use crate::aws::AwsContext;
use crate::convert::{Item, Rows, TableShape};
use crate::cursor::Position;
use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::throttle::{Throttle, backoff};

use super::raw::{self, TakeBody};

/// One Scan response (or a batch of items from elsewhere), parsed. A raw response body is
/// parsed on a blocking thread of the runtime while its scan task waits: pages of all segments
/// parse in parallel, on every core, and each segment's pages reach their conversion lane in
/// order.
#[derive(Debug)]
pub(crate) struct Page {
    /// The segment the page belongs to.
    pub(crate) segment: u32,
    items: Rows,
    /// Items returned (DynamoDB's Count).
    pub(crate) count: u64,
    /// Items read before any filter (ScannedCount).
    pub(crate) scanned: u64,
    /// ConsumedCapacity.CapacityUnits.
    pub(crate) consumed_rcu: f64,
    /// Where the page leaves its part: a Scan segment after its LastEvaluatedKey (done on its
    /// last page), a file after the items read so far.
    pub(crate) after: Position,
    /// The schema of the items, inferred where the page was parsed: off the conversion lane,
    /// which only merges it (see [`Page::into_parts`]).
    shape: TableShape,
}

impl Page {
    fn from_sdk(segment: u32, out: aws_sdk_dynamodb::operation::scan::ScanOutput) -> Result<Self> {
        let items = out.items.unwrap_or_default();
        let rows = Rows::from_items(&items)?;
        Ok(Page {
            segment,
            count: items.len() as u64,
            shape: TableShape::of_rows(&rows),
            items: rows,
            scanned: out.scanned_count.max(0) as u64,
            consumed_rcu: out
                .consumed_capacity
                .and_then(|c| c.capacity_units)
                .unwrap_or(0.0),
            after: Position::after_key(out.last_evaluated_key.filter(|k| !k.is_empty())),
        })
    }

    /// Parse a raw Scan response body on a blocking thread.
    async fn from_raw(segment: u32, body: Vec<u8>) -> Result<Self> {
        let parsed = tokio::task::spawn_blocking(move || {
            let parsed = raw::parse_page(&body);
            raw::recycle_body(body);
            parsed.map(|(head, rows)| (head, TableShape::of_rows(&rows), rows))
        })
        .await
        .map_err(|e| Error::Internal(format!("a page's parse failed: {e}")))?;
        let (head, shape, items) = parsed.map_err(|e| match e {
            raw::ParseError::UnknownType(path, message) => Error::Unrepresentable { path, message },
            raw::ParseError::Malformed(e) => Error::Dynamo {
                operation: "Scan",
                code: "MalformedResponse".into(),
                message: format!("the Scan response is malformed: {e}"),
                source: Some(Box::new(e)),
            },
        })?;
        Ok(Page {
            segment,
            count: head.count.max(0) as u64,
            scanned: head.scanned_count.max(0) as u64,
            consumed_rcu: head
                .consumed_capacity
                .and_then(|c| c.capacity_units)
                .unwrap_or(0.0),
            after: Position::after_key(
                head.last_evaluated_key
                    .map(|k| k.0)
                    .filter(|k| !k.is_empty()),
            ),
            shape,
            items,
        })
    }

    /// A batch of items read from elsewhere than a Scan (an export's data file, which plays the
    /// part of a segment; `after` is where the batch leaves it, done after the file's last
    /// one). Call it on the thread that read them: it infers their schema.
    pub(crate) fn from_rows(segment: u32, items: Rows, after: Position) -> Self {
        Page {
            segment,
            count: items.len() as u64,
            scanned: items.len() as u64,
            consumed_rcu: 0.0,
            after,
            shape: TableShape::of_rows(&items),
            items,
        }
    }

    /// The page's items and the schema inferred from every one of them.
    pub(crate) fn into_parts(self) -> (Rows, TableShape) {
        (self.items, self.shape)
    }
}

/// What flows from the sources to a conversion lane. A lane finishes its files only after
/// [`Msg::End`]; a channel closed without it means the sources failed.
#[derive(Debug)]
pub(crate) enum Msg {
    Page(Box<Page>),
    End,
}

/// Where the sources send their pages: the conversion lanes, one bounded channel each. Every
/// page of a segment (or of an export's data file) goes to the same lane, `segment % lanes`, so
/// each segment's pages are converted in the order they were sent, which the checkpoint's
/// per-segment positions rely on.
#[derive(Debug, Clone)]
pub(crate) struct PageSink {
    lanes: Arc<[mpsc::Sender<Msg>]>,
}

/// The lane that would have taken the page has stopped (it failed, or the run is ending).
#[derive(Debug)]
pub(crate) struct LaneStopped;

impl PageSink {
    /// A sink over the lanes' channels (at least one).
    pub(crate) fn new(lanes: Vec<mpsc::Sender<Msg>>) -> Self {
        assert!(!lanes.is_empty(), "a page sink needs a lane");
        PageSink {
            lanes: lanes.into(),
        }
    }

    fn lane(&self, segment: u32) -> &mpsc::Sender<Msg> {
        &self.lanes[segment as usize % self.lanes.len()]
    }

    /// Send `page` to its segment's lane, waiting while the lane is busy.
    pub(crate) async fn send(&self, page: Page) -> std::result::Result<(), LaneStopped> {
        let lane = self.lane(page.segment);
        lane.send(Msg::Page(Box::new(page)))
            .await
            .map_err(|_| LaneStopped)
    }

    /// [`Self::send`] from a blocking thread.
    pub(crate) fn blocking_send(&self, page: Page) -> std::result::Result<(), LaneStopped> {
        let lane = self.lane(page.segment);
        lane.blocking_send(Msg::Page(Box::new(page)))
            .map_err(|_| LaneStopped)
    }

    /// Tell every lane the sources are complete.
    pub(crate) async fn end(&self) {
        for lane in self.lanes.iter() {
            let _ = lane.send(Msg::End).await;
        }
    }
}

/// What a source meets when the conversion lane it sends to has stopped.
const LANE_STOPPED: &str = "the conversion thread stopped";

impl From<LaneStopped> for Error {
    fn from(_: LaneStopped) -> Self {
        Error::Internal(LANE_STOPPED.into())
    }
}

/// True when `error` only says that a conversion lane stopped: the lane's own error says why.
pub(crate) fn is_lane_stopped(error: &Error) -> bool {
    matches!(error, Error::Internal(message) if message == LANE_STOPPED)
}

/// What one segment scan needs.
#[derive(Clone)]
pub(crate) struct ScanJob {
    pub(crate) aws: AwsContext,
    pub(crate) table: Arc<str>,
    /// Secondary index to scan instead of the table.
    pub(crate) index: Option<Arc<str>>,
    /// Filter, projection and their names and values.
    pub(crate) expressions: Arc<crate::filter::Expressions>,
    pub(crate) total_segments: u32,
    pub(crate) consistent_read: bool,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) tx: PageSink,
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
    /// Scan one segment to its end, from `start_key` (a resume) or from its beginning. Each
    /// page is paid for in the shared read budget; throttled and failed pages are retried (same
    /// ExclusiveStartKey) with full-jitter backoff until `retry_timeout` passes without a
    /// successful page.
    pub(crate) async fn run(self, segment: u32, mut start_key: Option<Item>) -> Result<SegmentEnd> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| crate::error::Error::Internal("scan semaphore closed".into()))?;
        let no_sdk_retries = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled());
        loop {
            let mut attempt = 0u32;
            let mut failing_since: Option<Instant> = None;
            let page = loop {
                let (limit, estimate) = self.throttle.next_page();
                self.throttle.acquire(estimate).await;
                let take = TakeBody::default();
                let sent = self
                    .aws
                    .dynamodb
                    .scan()
                    .table_name(&*self.table)
                    .set_index_name(self.index.as_deref().map(str::to_owned))
                    .set_filter_expression(self.expressions.filter.clone())
                    .set_projection_expression(self.expressions.projection.clone())
                    .set_expression_attribute_names(self.expressions.names.clone())
                    .set_expression_attribute_values(self.expressions.values.clone())
                    .segment(segment as i32)
                    .total_segments(self.total_segments as i32)
                    .consistent_read(self.consistent_read)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .limit(limit)
                    .set_exclusive_start_key(start_key.clone())
                    .customize()
                    .config_override(no_sdk_retries.clone())
                    .interceptor(take.clone())
                    .send()
                    .await;
                // Ok(page), or Err((throttled, what happened)) for a page worth retrying.
                let attempt_result = match sent {
                    Ok(out) => match take.take() {
                        None => Ok(Page::from_sdk(segment, out)?),
                        Some(taken) => match raw::collect_checked(taken).await {
                            Ok(bytes) => Ok(Page::from_raw(segment, bytes).await?),
                            Err(e) => Err((false, format!("reading a Scan response: {e}"))),
                        },
                    },
                    Err(err) => {
                        let kind = failure_kind(&err);
                        let error = self.aws.classify("Scan", &self.table, err);
                        match kind {
                            Failure::Fatal => return Err(error),
                            Failure::Throttled => Err((true, error.to_string())),
                            Failure::Transient => Err((false, error.to_string())),
                        }
                    }
                };
                match attempt_result {
                    Ok(page) => {
                        self.throttle
                            .settle(estimate, page.consumed_rcu, page.scanned)
                            .await;
                        break page;
                    }
                    Err((throttled, detail)) => {
                        if throttled {
                            self.throttle.throttled();
                            self.progress.event(&ProgressEvent::Throttled { segment });
                        }
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.retry_timeout {
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
            self.progress.event(&ProgressEvent::Page {
                segment,
                items: page.count,
                scanned: page.scanned,
                consumed_rcu: page.consumed_rcu,
            });
            let next = match &page.after {
                Position::After { key } => Some(key.0.clone()),
                _ => None,
            };
            if self.tx.send(page).await.is_err() {
                return Ok(SegmentEnd::Stopped);
            }
            match next {
                Some(key) => start_key = Some(key),
                None => return Ok(SegmentEnd::Done),
            }
        }
    }
}
