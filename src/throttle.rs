//! Reading only a fraction of the table's capacity.
//!
//! [`ReadBudget::plan`] turns DescribeTable's capacity into a budget in RCU per second:
//!
//! * capacity: provisioned ReadCapacityUnits (a table without BillingModeSummary is
//!   provisioned); for on-demand tables the table's OnDemandThroughput maximum, else its warm
//!   throughput, else `--max-rcu` (which is then the budget itself), else
//!   [`DEFAULT_ON_DEMAND_CAPACITY`];
//! * budget = `fraction × capacity`, capped at `--max-rcu` when given.
//!
//! `Throttle` enforces it for all segments together with one `governor` limiter counted in
//! hundredths of an RCU:
//!
//! * before each Scan request a segment pays the page's *estimated* cost; after the response it
//!   pays whatever the real ConsumedCapacity exceeded the estimate by, so the long-run rate is
//!   the real consumption, never the estimate;
//! * the page `Limit` is sized from the measured RCU per item so one page costs about
//!   [`PAGE_SECONDS`] of budget, and the limiter's burst is the same size: no page overdraws
//!   the budget and any 5-second window stays within about 5% of it;
//! * a throttled request lowers the rate to 70% (multiplicative decrease) and each good page
//!   gives back 5% of the budget (additive increase); the same page is retried after a
//!   full-jitter exponential backoff, never the whole segment. 5xx answers and dropped
//!   connections are retried the same way without lowering the rate.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::table::{ReadCapacity, TableInfo};

/// Default fraction of the table's read capacity a snapshot may use.
pub const DEFAULT_READ_FRACTION: f64 = 0.5;
/// Capacity assumed for an on-demand table that declares neither a maximum nor a warm
/// throughput, when no `--max-rcu` is given (RCU per second).
pub const DEFAULT_ON_DEMAND_CAPACITY: f64 = 4000.0;
/// Seconds of budget one Scan page is sized to cost (and the limiter's burst).
pub const PAGE_SECONDS: f64 = 0.25;
/// Largest page DynamoDB returns, in eventually consistent RCU (1 MB / 4 KB / 2).
const MAX_PAGE_RCU: f64 = 128.0;
/// Hundredths of an RCU per limiter cell.
const CELLS_PER_RCU: f64 = 100.0;
/// Lowest rate factor after repeated throttling.
const MIN_FACTOR: f64 = 1.0 / 32.0;
/// Rate kept after a throttled request (multiplicative decrease, as the AWS SDKs' adaptive
/// retry mode does).
const DECREASE: f64 = 0.7;
/// Rate given back after each successful page (additive increase: 20 pages from nothing to
/// the full budget).
const INCREASE_PER_PAGE: f64 = 0.05;

/// Where the capacity behind a budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacitySource {
    /// Provisioned ReadCapacityUnits.
    Provisioned,
    /// OnDemandThroughput.MaxReadRequestUnits of an on-demand table.
    OnDemandMaximum,
    /// WarmThroughput.ReadUnitsPerSecond of an on-demand table.
    WarmThroughput,
    /// `--max-rcu` on an on-demand table with no declared capacity.
    MaxRcu,
    /// [`DEFAULT_ON_DEMAND_CAPACITY`].
    Default,
    /// Nothing is read from the table (converting an export).
    NotRead,
}

/// The read budget of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadBudget {
    /// RCU per second the scan may consume.
    pub rcu_per_second: f64,
    /// The table's read capacity the budget is a fraction of.
    pub capacity: f64,
    /// Where `capacity` came from.
    pub source: CapacitySource,
    /// The configured fraction.
    pub fraction: f64,
    /// True when `--max-rcu` lowered the budget.
    pub capped_by_max_rcu: bool,
    /// The budget is one of this many equal shares of the run's (the part of one shard of a
    /// split run); 1 otherwise.
    #[serde(default = "one_share", skip_serializing_if = "is_one_share")]
    pub shares: u32,
}

fn one_share() -> u32 {
    1
}

fn is_one_share(shares: &u32) -> bool {
    *shares == 1
}

impl Default for ReadBudget {
    /// No budget: a run that reads no table capacity ([`ReadBudget::none`]).
    fn default() -> Self {
        Self::none()
    }
}

impl ReadBudget {
    /// The budget for scanning `table` (or its global index `index`, which has its own
    /// capacity; a local index shares the table's) at `fraction` of the capacity, capped at
    /// `max_rcu`. `None` when the table has no index of that name.
    pub fn plan_for(
        table: &TableInfo,
        index: Option<&str>,
        fraction: f64,
        max_rcu: Option<f64>,
    ) -> Option<Self> {
        let capacity = match index {
            None => &table.capacity,
            Some(name) => {
                let index = table.indexes.iter().find(|i| i.name == name)?;
                index.capacity.as_ref().unwrap_or(&table.capacity)
            }
        };
        Some(Self::from_capacity(capacity, fraction, max_rcu))
    }

    /// The budget of a run that reads nothing from the table.
    pub fn none() -> Self {
        ReadBudget {
            rcu_per_second: 0.0,
            capacity: 0.0,
            source: CapacitySource::NotRead,
            fraction: 0.0,
            capped_by_max_rcu: false,
            shares: 1,
        }
    }

    /// The budget for `table` at `fraction` of its capacity, capped at `max_rcu`.
    pub fn plan(table: &TableInfo, fraction: f64, max_rcu: Option<f64>) -> Self {
        Self::from_capacity(&table.capacity, fraction, max_rcu)
    }

    fn from_capacity(read: &ReadCapacity, fraction: f64, max_rcu: Option<f64>) -> Self {
        let (capacity, source) = if let Some(rcu) = read.provisioned_rcu {
            (rcu as f64, CapacitySource::Provisioned)
        } else if let Some(max) = read.on_demand_max {
            (max as f64, CapacitySource::OnDemandMaximum)
        } else if let Some(warm) = read.warm_per_second {
            (warm as f64, CapacitySource::WarmThroughput)
        } else if let Some(max) = max_rcu {
            (max / fraction, CapacitySource::MaxRcu)
        } else {
            (DEFAULT_ON_DEMAND_CAPACITY, CapacitySource::Default)
        };
        let wanted = fraction * capacity;
        let rcu_per_second = max_rcu.map_or(wanted, |m| wanted.min(m));
        ReadBudget {
            rcu_per_second,
            capacity,
            source,
            fraction,
            capped_by_max_rcu: source != CapacitySource::MaxRcu && rcu_per_second < wanted,
            shares: 1,
        }
    }

    /// One line for people: the budget and where it came from.
    pub fn describe(&self) -> String {
        if self.shares > 1 {
            let whole = ReadBudget {
                rcu_per_second: self.rcu_per_second * f64::from(self.shares),
                shares: 1,
                ..self.clone()
            };
            return format!(
                "{:.1} RCU/s, a 1/{} share of {}",
                self.rcu_per_second,
                self.shares,
                whole.describe()
            );
        }
        let origin = match self.source {
            CapacitySource::Provisioned => format!("{:.0} provisioned RCU", self.capacity),
            CapacitySource::OnDemandMaximum => {
                format!("the on-demand maximum of {:.0} read units/s", self.capacity)
            }
            CapacitySource::WarmThroughput => {
                format!("the warm throughput of {:.0} read units/s", self.capacity)
            }
            CapacitySource::MaxRcu => {
                return format!("{:.1} RCU/s (--max-rcu)", self.rcu_per_second);
            }
            CapacitySource::Default => format!(
                "{:.0} RCU assumed for an on-demand table without a declared capacity; set --max-rcu",
                self.capacity
            ),
            CapacitySource::NotRead => return "nothing (no table reads)".to_owned(),
        };
        let capped = if self.capped_by_max_rcu {
            ", capped by --max-rcu"
        } else {
            ""
        };
        format!(
            "{:.1} RCU/s ({:.0}% of {origin}{capped})",
            self.rcu_per_second,
            self.fraction * 100.0
        )
    }

    /// One of `shards` equal shares of this budget (the part one shard of a split run may
    /// read at).
    pub fn share(&self, shards: u32) -> Self {
        ReadBudget {
            rcu_per_second: self.rcu_per_second / f64::from(shards.max(1)),
            shares: self.shares * shards.max(1),
            ..self.clone()
        }
    }

    /// Segments worth running at once for this budget: one per 400 RCU/s (a segment reading
    /// 1 MB pages back to back consumes roughly that much), at least 1, at most `max`.
    pub fn concurrency(&self, max: u32) -> u32 {
        ((self.rcu_per_second / 400.0).ceil() as u32).clamp(1, max.max(1))
    }
}

/// The cost of a Scan page of `bytes` of items: one RCU per 4 KB (rounded up over the page),
/// half for eventually consistent reads.
pub fn scan_page_rcu(bytes: u64, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// Backoff before retry `attempt` (0-based): full jitter over an exponential ceiling,
/// `random(0, min(cap, base × 2^attempt))`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit_random: f64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    ceiling.mul_f64(unit_random.clamp(0.0, 1.0))
}

#[derive(Debug)]
struct Adaptive {
    /// Fraction of the budget currently allowed (AIMD), in (0, 1].
    factor: f64,
    /// Moving average of RCU per item, once measured.
    rcu_per_item: Option<f64>,
}

/// The shared limiter of a run (see the module docs).
#[derive(Debug)]
pub(crate) struct Throttle {
    limiter: DefaultDirectRateLimiter,
    burst_cells: u32,
    budget: f64,
    first_estimate: f64,
    state: Mutex<Adaptive>,
    throttled: AtomicU64,
    retries: AtomicU64,
}

impl Throttle {
    /// A limiter for `budget` RCU/s. `item_bytes` (from DescribeTable, when known) seeds the
    /// per-item cost before the first page is measured.
    pub(crate) fn new(budget: f64, item_bytes: Option<f64>, consistent: bool) -> Self {
        let budget = budget.max(0.01);
        let per_second = ((budget * CELLS_PER_RCU).round() as u32).max(1);
        let page_cells = (budget * PAGE_SECONDS * CELLS_PER_RCU).ceil() as u32;
        let burst_cells = page_cells.max((CELLS_PER_RCU / 2.0) as u32).max(1);
        let quota = Quota::per_second(NonZeroU32::new(per_second).expect("at least 1"))
            .allow_burst(NonZeroU32::new(burst_cells).expect("at least 1"));
        let per_4k = if consistent { 1.0 } else { 0.5 };
        Throttle {
            limiter: RateLimiter::direct(quota),
            burst_cells,
            budget,
            first_estimate: item_bytes.map_or(0.25 * per_4k, |b| (b / 4096.0) * per_4k),
            state: Mutex::new(Adaptive {
                factor: 1.0,
                rcu_per_item: None,
            }),
            throttled: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Items to ask for in the next page and the RCU that page is expected to cost.
    pub(crate) fn next_page(&self) -> (i32, f64) {
        let state = self.state.lock().expect("not poisoned");
        let target = (self.budget * PAGE_SECONDS).min(MAX_PAGE_RCU);
        let (per_item, cap) = match state.rcu_per_item {
            Some(per_item) => (per_item, i32::MAX),
            // Until one page is measured, pages stay small.
            None => (self.first_estimate, 10),
        };
        let limit = ((target / per_item.max(1e-6)).floor() as i64).clamp(1, cap as i64) as i32;
        let estimate = (limit as f64 * per_item).clamp(0.5, target.max(0.5));
        (limit, estimate)
    }

    async fn pay(&self, rcu: f64) {
        let factor = self.state.lock().expect("not poisoned").factor;
        let mut cells = (rcu * CELLS_PER_RCU / factor).ceil() as u64;
        while cells > 0 {
            let n = cells.min(self.burst_cells as u64) as u32;
            if let Some(n) = NonZeroU32::new(n) {
                // n never exceeds the burst, so this cannot fail.
                let _ = self.limiter.until_n_ready(n).await;
            }
            cells -= n as u64;
        }
    }

    /// Wait until the budget allows a page estimated at `estimate` RCU.
    pub(crate) async fn acquire(&self, estimate: f64) {
        self.pay(estimate).await;
    }

    /// Account for a page that cost `actual` RCU for `scanned` items, after `estimate` was paid.
    pub(crate) async fn settle(&self, estimate: f64, actual: f64, scanned: u64) {
        {
            let mut state = self.state.lock().expect("not poisoned");
            state.factor = (state.factor + INCREASE_PER_PAGE).min(1.0);
            if scanned > 0 && actual > 0.0 {
                let measured = actual / scanned as f64;
                state.rcu_per_item = Some(match state.rcu_per_item {
                    Some(avg) => 0.7 * avg + 0.3 * measured,
                    None => measured,
                });
            }
        }
        if actual > estimate {
            self.pay(actual - estimate).await;
        }
    }

    /// A request was throttled: lower the allowed rate.
    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().expect("not poisoned");
        state.factor = (state.factor * DECREASE).max(MIN_FACTOR);
    }

    /// A request is being retried (throttled or transient failure).
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// (throttled responses, retried requests) so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.throttled.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }

    /// The rate currently allowed, in RCU/s.
    #[cfg(test)]
    pub(crate) fn current_rate(&self) -> f64 {
        self.budget * self.state.lock().expect("not poisoned").factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(provisioned: Option<i64>, on_demand: Option<i64>, warm: Option<i64>) -> TableInfo {
        TableInfo {
            name: "t".into(),
            arn: None,
            key_schema: vec![],
            item_count: None,
            size_bytes: None,
            billing_mode: if provisioned.is_some() {
                "PROVISIONED"
            } else {
                "PAY_PER_REQUEST"
            }
            .into(),
            capacity: ReadCapacity {
                provisioned_rcu: provisioned,
                on_demand_max: on_demand,
                warm_per_second: warm,
            },
            indexes: vec![
                crate::table::IndexInfo {
                    name: "by_status".into(),
                    capacity: Some(ReadCapacity {
                        provisioned_rcu: Some(40),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                crate::table::IndexInfo {
                    name: "by_date".into(),
                    capacity: None,
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn indexes_use_their_own_capacity() {
        let t = table(Some(100), None, None);
        let gsi = ReadBudget::plan_for(&t, Some("by_status"), 0.5, None).unwrap();
        assert_eq!(
            (gsi.rcu_per_second, gsi.source),
            (20.0, CapacitySource::Provisioned)
        );
        let lsi = ReadBudget::plan_for(&t, Some("by_date"), 0.5, None).unwrap();
        assert_eq!(
            lsi.rcu_per_second, 50.0,
            "a local index shares the table's capacity"
        );
        assert!(ReadBudget::plan_for(&t, Some("nope"), 0.5, None).is_none());
        assert_eq!(
            ReadBudget::plan_for(&t, None, 0.5, None)
                .unwrap()
                .rcu_per_second,
            50.0
        );
    }

    #[test]
    fn capacity_sources_in_order() {
        let b = ReadBudget::plan(&table(Some(100), None, None), 0.5, None);
        assert_eq!(
            (b.rcu_per_second, b.source),
            (50.0, CapacitySource::Provisioned)
        );
        assert_eq!(b.describe(), "50.0 RCU/s (50% of 100 provisioned RCU)");

        let b = ReadBudget::plan(&table(Some(100), None, None), 0.5, Some(20.0));
        assert_eq!(b.rcu_per_second, 20.0);
        assert!(b.capped_by_max_rcu);

        let b = ReadBudget::plan(&table(None, Some(1000), Some(12000)), 0.25, None);
        assert_eq!(
            (b.rcu_per_second, b.source),
            (250.0, CapacitySource::OnDemandMaximum)
        );

        let b = ReadBudget::plan(&table(None, None, Some(12000)), 0.5, None);
        assert_eq!(
            (b.rcu_per_second, b.source),
            (6000.0, CapacitySource::WarmThroughput)
        );

        let b = ReadBudget::plan(&table(None, None, None), 0.5, Some(400.0));
        assert_eq!(
            (b.rcu_per_second, b.source),
            (400.0, CapacitySource::MaxRcu)
        );
        assert!(!b.capped_by_max_rcu);

        let b = ReadBudget::plan(&table(None, None, None), 0.5, None);
        assert_eq!(
            (b.rcu_per_second, b.source),
            (2000.0, CapacitySource::Default)
        );
        assert!(b.describe().contains("set --max-rcu"));
    }

    #[test]
    fn page_costs() {
        assert_eq!(scan_page_rcu(1, false), 0.5);
        assert_eq!(scan_page_rcu(4096, true), 1.0);
        assert_eq!(scan_page_rcu(4097, true), 2.0);
        assert_eq!(scan_page_rcu(1 << 20, false), 128.0);
        assert_eq!(
            scan_page_rcu(1 << 20, true),
            2.0 * scan_page_rcu(1 << 20, false)
        );
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(20));
        assert_eq!(backoff(0, base, cap, 1.0), base);
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(30, base, cap, 1.0), cap);
        assert_eq!(backoff(5, base, cap, 0.0), Duration::ZERO);
        assert!(backoff(5, base, cap, 0.5) <= Duration::from_millis(1600));
    }

    #[test]
    fn limit_is_sized_so_a_page_fits_the_budget() {
        let t = Throttle::new(50.0, None, false);
        let (first, _) = t.next_page();
        assert!(first <= 10, "small first page");
        // 1.15 KB items, eventually consistent: ~0.14 RCU each.
        futures::executor::block_on(t.settle(1.0, 14.0, 100));
        let (limit, estimate) = t.next_page();
        assert_eq!(limit, 89); // 12.5 RCU (0.25 s of 50 RCU/s) / 0.14
        assert!(estimate <= 50.0 * PAGE_SECONDS + 1e-9);
        // A large budget asks for full 1 MB pages at most.
        let big = Throttle::new(40_000.0, Some(1024.0), false);
        futures::executor::block_on(big.settle(1.0, 128.0, 1000));
        let (_, estimate) = big.next_page();
        assert!(estimate <= MAX_PAGE_RCU);
    }

    #[test]
    fn aimd_decreases_and_recovers_slowly() {
        let t = Throttle::new(100.0, None, false);
        t.throttled();
        t.throttled();
        assert!((t.current_rate() - 49.0).abs() < 1e-9);
        for _ in 0..5 {
            futures::executor::block_on(t.settle(1.0, 0.5, 1));
        }
        assert!((t.current_rate() - 74.0).abs() < 1e-9);
        for _ in 0..100 {
            t.throttled();
        }
        assert_eq!(t.current_rate(), 100.0 * MIN_FACTOR);
        for _ in 0..100 {
            futures::executor::block_on(t.settle(1.0, 0.5, 1));
        }
        assert_eq!(t.current_rate(), 100.0);
        assert_eq!(t.counts().0, 102);
    }

    #[test]
    fn budget_concurrency() {
        let b = |r: f64| ReadBudget {
            rcu_per_second: r,
            capacity: r,
            source: CapacitySource::Provisioned,
            fraction: 1.0,
            capped_by_max_rcu: false,
            shares: 1,
        };
        assert_eq!(b(50.0).concurrency(8), 1);
        let quarter = b(100.0).share(4);
        assert_eq!(quarter.rcu_per_second, 25.0);
        assert_eq!(
            quarter.describe(),
            "25.0 RCU/s, a 1/4 share of 100.0 RCU/s (100% of 100 provisioned RCU)"
        );
        assert_eq!(b(1000.0).concurrency(8), 3);
        assert_eq!(b(100_000.0).concurrency(8), 8);
    }
}
