//! Contract C4 through a proxy that enforces a provisioned rate the way DynamoDB does
//! (400 ProvisionedThroughputExceededException when the bucket is empty, 5 s of burst), and
//! fault injection (throttles, 500s, dropped connections) that must not cost a single item.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ddbsnap::convert::Item;
use ddbsnap::throttle::CapacitySource;
use proxy::{Action, Proxy};

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}"#;

/// What the rate-enforcing proxy saw.
#[derive(Default)]
struct Ledger {
    tokens: f64,
    last: Option<Instant>,
    served: Vec<(Instant, f64)>,
    throttled: u64,
}

fn consumed(body: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["ConsumedCapacity"]["CapacityUnits"]
        .as_f64()
        .unwrap_or(0.0)
}

/// A proxy enforcing `rate` RCU/s with `rate × 5` of burst on Scan, from dynalite's
/// ConsumedCapacity.
async fn enforcing_proxy(db: &Dynalite, rate: f64) -> (Proxy, Arc<Mutex<Ledger>>) {
    let ledger = Arc::new(Mutex::new(Ledger {
        tokens: rate * 5.0,
        ..Default::default()
    }));
    let l = Arc::clone(&ledger);
    let rule: proxy::Rule = Arc::new(move |op, _| {
        if op != "Scan" {
            return Action::Forward;
        }
        let mut g = l.lock().unwrap();
        let now = Instant::now();
        if let Some(last) = g.last {
            g.tokens = (g.tokens + rate * now.duration_since(last).as_secs_f64()).min(rate * 5.0);
        }
        g.last = Some(now);
        if g.tokens <= 0.0 {
            g.throttled += 1;
            return Action::Respond {
                status: 400,
                body: THROTTLED.into(),
            };
        }
        let l = Arc::clone(&l);
        Action::Inspect(Box::new(move |body| {
            let rcu = consumed(body);
            let mut g = l.lock().unwrap();
            g.tokens -= rcu;
            g.served.push((Instant::now(), rcu));
        }))
    });
    (Proxy::start(db.port, rule).await, ledger)
}

async fn provisioned_table(db: &Dynalite, name: &str, rcu: i64, items: u64) -> Vec<Item> {
    let client = db.client();
    create_table_with(&client, name, None, Some(rcu)).await;
    put_random_items(&client, name, items, 1000).await;
    scan_all(&client, name).await
}

/// What the proxy served: RCU in all, over how many seconds, the mean rate and the highest
/// rates over any 5 s and 1 s window.
struct Rates {
    total: f64,
    span: f64,
    mean: f64,
    worst5: f64,
    worst1: f64,
}

impl Rates {
    fn of(served: &[(Instant, f64)]) -> Self {
        let total: f64 = served.iter().map(|(_, r)| r).sum();
        let span = served
            .last()
            .unwrap()
            .0
            .duration_since(served[0].0)
            .as_secs_f64();
        Rates {
            total,
            span,
            mean: total / span,
            worst5: max_window_rate(served, Duration::from_secs(5)),
            worst1: max_window_rate(served, Duration::from_secs(1)),
        }
    }
}

/// Highest RCU/s over any `window` starting at a served page.
fn max_window_rate(served: &[(Instant, f64)], window: Duration) -> f64 {
    served
        .iter()
        .map(|(start, _)| {
            served
                .iter()
                .filter(|(t, _)| *t >= *start && t.duration_since(*start) < window)
                .map(|(_, r)| r)
                .sum::<f64>()
                / window.as_secs_f64()
        })
        .fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_of_100_rcu_is_used_without_a_single_throttle() {
    let db = Dynalite::start();
    let truth = provisioned_table(&db, "prod", 100, 20_000).await;
    let (proxy, ledger) = enforcing_proxy(&db, 100.0).await;

    let aws = aws_context(Some(proxy.endpoint()));
    let run = snapshot_local(&aws, "prod", |b| b.read_fraction(0.5).segments(8)).await;
    let target = run.target;
    let summary = run.result.unwrap();
    assert_eq!(summary.read_budget.source, CapacitySource::Provisioned);
    assert_eq!(summary.read_budget.rcu_per_second, 50.0);
    assert_eq!(
        summary.concurrency, 1,
        "a low budget runs few segments at once"
    );

    let (throttled, served) = {
        let g = ledger.lock().unwrap();
        (g.throttled, g.served.clone())
    };
    assert_eq!(throttled, 0, "no request was throttled");
    assert_eq!(summary.throttled_requests, 0);
    let Rates {
        total,
        span,
        mean,
        worst5,
        worst1,
    } = Rates::of(&served);
    assert!((total - summary.consumed_rcu).abs() < 1e-6);
    eprintln!(
        "budget 50 RCU/s: {total:.0} RCU in {span:.1} s, mean {mean:.1}, worst 5 s {worst5:.1}, worst 1 s {worst1:.1}"
    );
    assert!(worst5 <= 55.0, "worst 5 s window {worst5:.1} RCU/s");
    assert!(mean >= 45.0, "mean {mean:.1} RCU/s");
    assert_same_items(&truth, &read_snapshot(&target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_500s_and_dropped_connections_lose_nothing() {
    let db = Dynalite::start();
    // 400 RCU at 0.5: 50 RCU pages, about 40 Scan requests for these 6,000 items.
    let truth = provisioned_table(&db, "flaky", 400, 6000).await;
    let counts = Arc::new(Mutex::new((0u32, 0u32, 0u32, 0u32)));
    let seen = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = Arc::clone(&counts);
    // Of every 20 Scan requests: 6 throttled (30%), 1 connection dropped (5%), 1 answered 500,
    // 1 with a letter of its body changed on the way (caught by the x-amz-crc32 check).
    let rule: proxy::Rule = Arc::new(move |op, _| {
        if op != "Scan" {
            return Action::Forward;
        }
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 20;
        let mut g = c.lock().unwrap();
        if [0, 3, 6, 9, 12, 16].contains(&n) {
            g.0 += 1;
            Action::Respond {
                status: 400,
                body: THROTTLED.into(),
            }
        } else if n == 1 {
            g.1 += 1;
            Action::Reset
        } else if n == 13 {
            g.3 += 1;
            Action::Corrupt
        } else if n == 10 {
            g.2 += 1;
            Action::Respond {
                status: 500,
                body: r#"{"__type":"com.amazon.coral.service#InternalServerError","message":"injected"}"#.into(),
            }
        } else {
            Action::Forward
        }
    });
    let proxy = Proxy::start(db.port, rule).await;
    let aws = aws_context(Some(proxy.endpoint()));
    let run = snapshot_local(&aws, "flaky", |b| b.segments(4)).await;
    let target = run.target;
    let summary = run.result.unwrap();
    let (throttled, resets, errors, damaged) = *counts.lock().unwrap();
    eprintln!(
        "injected {throttled} throttles, {resets} resets, {errors} 500s, {damaged} damaged \
         bodies: {summary:?}"
    );
    assert!(
        throttled > 0 && resets > 0 && errors > 0 && damaged > 0,
        "faults were injected"
    );
    assert_eq!(summary.throttled_requests, throttled as u64);
    assert!(summary.retried_requests >= (throttled + resets + errors + damaged) as u64);
    assert_same_items(&truth, &read_snapshot(&target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_gives_up_with_a_clear_error() {
    let db = Dynalite::start();
    provisioned_table(&db, "stuck", 10, 10).await;
    let rule: proxy::Rule = Arc::new(|op, _| match op {
        "Scan" => Action::Respond {
            status: 400,
            body: THROTTLED.into(),
        },
        _ => Action::Forward,
    });
    let proxy = Proxy::start(db.port, rule).await;
    let aws = aws_context(Some(proxy.endpoint()));
    let run = snapshot_local(&aws, "stuck", |b| {
        b.segments(1).retry_timeout(Duration::from_secs(2))
    })
    .await;
    let dir = run.dir;
    let err = run.result.unwrap_err();
    assert_eq!(err.exit_code(), 9, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("gave up on segment 0"), "{msg}");
    assert!(msg.contains("ProvisionedThroughputExceeded"), "{msg}");
    assert!(msg.contains("--read-fraction"), "{msg}");
    assert!(!dir.path().join("_manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_index_is_budgeted_from_its_own_capacity() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
        ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    };
    let db = Dynalite::start();
    let key = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
            .unwrap()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let throughput = |rcu: i64| {
        ProvisionedThroughput::builder()
            .read_capacity_units(rcu)
            .write_capacity_units(5)
            .build()
            .unwrap()
    };
    db.client()
        .create_table()
        .table_name("indexed")
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("status"))
        .key_schema(key("pk"))
        .provisioned_throughput(throughput(100))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_status")
                .key_schema(key("status"))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .provisioned_throughput(throughput(40))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let table = ddbsnap::table::TableInfo::describe(&db.aws(), "indexed")
        .await
        .unwrap();
    let budget =
        ddbsnap::throttle::ReadBudget::plan_for(&table, Some("by_status"), 0.5, None).unwrap();
    assert_eq!(budget.rcu_per_second, 20.0);
    assert_eq!(budget.describe(), "20.0 RCU/s (50% of 40 provisioned RCU)");
    let table_budget = ddbsnap::throttle::ReadBudget::plan_for(&table, None, 0.5, None).unwrap();
    assert_eq!(table_budget.rcu_per_second, 50.0);
}

/// A run split into 4 shard processes shares the table's budget: each reads at a quarter of
/// it, and together they use it fully without a throttle, over any 5-second window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_share_the_budget_without_a_throttle() {
    let db = Dynalite::start();
    let truth = provisioned_table(&db, "prod", 100, 20_000).await;
    let (proxy, ledger) = enforcing_proxy(&db, 100.0).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_str().unwrap().to_owned();
    let endpoint = proxy.endpoint();
    let shard = |i: u32| -> Vec<String> {
        let shard = format!("{i}/4");
        [
            "snapshot",
            "prod",
            "--to",
            &to,
            "--endpoint-url",
            &endpoint,
            "--read-fraction",
            "0.5",
            "--segments",
            "8",
            "--shard",
            &shard,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let runs = futures::future::join_all((0..4).map(|i| run_ddbsnap_to_end(shard(i)))).await;
    for (i, out) in runs.iter().enumerate() {
        let stdout = succeeded(out);
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(
            summary["read_budget"]["rcu_per_second"], 12.5,
            "shard {i} reads at a quarter of 50 RCU/s"
        );
        assert_eq!(summary["throttled_requests"], 0, "shard {i}");
    }
    let (throttled, mut served) = {
        let g = ledger.lock().unwrap();
        (g.throttled, g.served.clone())
    };
    served.sort_by_key(|(t, _)| *t);
    assert_eq!(throttled, 0, "no request was throttled");
    let Rates {
        total,
        span,
        mean,
        worst5,
        worst1,
    } = Rates::of(&served);
    eprintln!(
        "4 shards, budget 50 RCU/s: {total:.0} RCU in {span:.1} s, mean {mean:.1}, worst 5 s {worst5:.1}, worst 1 s {worst1:.1}"
    );
    assert!(worst5 <= 55.0, "worst 5 s window {worst5:.1} RCU/s");
    assert!(mean >= 45.0, "mean {mean:.1} RCU/s");

    let commit =
        run_ddbsnap_to_end(["commit", &to, "--shards", "4"].map(String::from).to_vec()).await;
    succeeded(&commit);
    let target = ddbsnap::sink::Target::open(
        &ddbsnap::sink::Destination::parse(&to).unwrap(),
        None,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_same_items(&truth, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(
        manifest.read_budget.rcu_per_second, 50.0,
        "the run's whole budget"
    );
}
