//! Soak: a table through a DynamoDB that throttles 30% of the Scans, drops connections, answers
//! 500 and damages bodies, to S3 (s3s-fs) that fails a third of the part uploads, must come
//! back exact, item by item, from the real binary, whose peak RSS is reported.
//!
//! The suite runs it on 20,000 items. The full soak is the same test on 1,000,000 items, with
//! the release binary (about 11 minutes on 2 cores, most of it loading the table):
//!
//! ```text
//! cargo build --release --locked
//! DDBSNAP_SOAK_ITEMS=1000000 DDBSNAP_BIN=target/release/ddbsnap \
//!     cargo test --locked --test soak -- --nocapture
//! ```

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::{Destination, S3Options, Target};
use proxy::{Action, Proxy};
use serde_json::Value;

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected"}"#;
const INTERNAL: &str =
    r#"{"__type":"com.amazon.coral.service#InternalServerError","message":"injected"}"#;

/// About 1 KB (numbers in canonical form, as DynamoDB keeps them): text, exact decimals, binary, a set, a map and a list; a 38-digit number in
/// every 1,000th item and an attribute only every 7th item has.
fn soak_item(i: u64) -> Item {
    let mut entries = vec![
        ("pk", s(&format!("soak-{i:08}"))),
        ("sk", n(&(i % 97).to_string())),
        (
            "price",
            n(&format!("{}.{:03}7", i * 7919 % 1_000_000, i % 1000)),
        ),
        ("raw", AV::B(Blob::new(random_bytes(i, 64)))),
        ("tags", AV::Ss(vec![format!("t{}", i % 11), "all".into()])),
        (
            "meta",
            AV::M(item(vec![
                ("rank", n(&i.to_string())),
                ("odd", AV::Bool(i % 2 == 1)),
                ("note", s(&random_text(i + 1, 40))),
            ])),
        ),
        (
            "hist",
            AV::L(vec![n(&(i % 13).to_string()), s("x"), AV::Null(true)]),
        ),
        ("body", s(&random_text(i, 700))),
    ];
    if i.is_multiple_of(1000) {
        entries.push(("big", n("-1234567890123456789012345678901234567.8")));
    }
    if i.is_multiple_of(7) {
        entries.push(("seventh", s("yes")));
    }
    item(entries)
}

/// Counts of injected faults.
#[derive(Default)]
struct Injected {
    scans: AtomicU64,
    throttled: AtomicU64,
    resets: AtomicU64,
    errors: AtomicU64,
    damaged: AtomicU64,
    parts: AtomicU64,
    failed_parts: AtomicU64,
}

/// Of every 20 Scans: 6 throttled (30%), 1 connection dropped, 1 answered 500 and 1 with a
/// letter of its body changed on the way (which only the x-amz-crc32 check catches).
fn dynamodb_faults(injected: Arc<Injected>) -> proxy::Rule {
    Arc::new(move |op, _| {
        if op != "Scan" {
            return Action::Forward;
        }
        let count = |c: &AtomicU64| c.fetch_add(1, Ordering::SeqCst);
        match count(&injected.scans) % 20 {
            0 | 3 | 6 | 9 | 12 | 16 => {
                count(&injected.throttled);
                Action::Respond {
                    status: 400,
                    body: THROTTLED.into(),
                }
            }
            1 => {
                count(&injected.resets);
                Action::Reset
            }
            10 => {
                count(&injected.errors);
                Action::Respond {
                    status: 500,
                    body: INTERNAL.into(),
                }
            }
            13 => {
                count(&injected.damaged);
                Action::Corrupt
            }
            _ => Action::Forward,
        }
    })
}

/// Every third part upload (the first one included) answered 500.
fn s3_faults(injected: Arc<Injected>) -> proxy::Rule {
    Arc::new(move |line, _| {
        if !(line.starts_with("PUT ") && line.contains("partNumber=")) {
            return Action::Forward;
        }
        if !injected
            .parts
            .fetch_add(1, Ordering::SeqCst)
            .is_multiple_of(3)
        {
            return Action::Forward;
        }
        injected.failed_parts.fetch_add(1, Ordering::SeqCst);
        Action::Respond {
            status: 500,
            body: "<Error><Code>InternalError</Code><Message>injected</Message></Error>".into(),
        }
    })
}

/// Run the binary with `args` to the end: its stdout, stderr, exit status and peak RSS in MiB
/// (the unit `scripts/bench` and `scripts/bench-export` report).
fn run_measured(args: &[String]) -> (String, String, std::process::ExitStatus, f64) {
    let mut cmd = ddbsnap_command(args);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The high-water mark of the process's own memory after exec (its rusage from wait4 would
    // include the pages of this test process it was forked from), read until it exits.
    let status_file = format!("/proc/{}/status", child.id());
    let peak_kib = Arc::new(AtomicU64::new(0));
    let peak = Arc::clone(&peak_kib);
    let watcher = std::thread::spawn(move || {
        while let Ok(status) = std::fs::read_to_string(&status_file) {
            let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            else {
                break;
            };
            peak.fetch_max(kib, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap());
    let stdout = std::io::read_to_string(&mut out).unwrap();
    let stderr = stderr.join().unwrap();
    let status = child.wait().unwrap();
    watcher.join().unwrap();
    let peak_mib = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;
    (stdout, stderr, status, peak_mib)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_through_faults_on_both_sides_comes_back_exact() {
    let items: u64 = std::env::var("DDBSNAP_SOAK_ITEMS")
        .map(|v| v.parse().expect("DDBSNAP_SOAK_ITEMS is a number"))
        .unwrap_or(20_000);
    let db = Dynalite::start();
    let s3 = S3Server::start(&["lake"]);
    let client = db.client();
    create_table(
        &client,
        "soak",
        Some(aws_sdk_dynamodb::types::ScalarAttributeType::N),
    )
    .await;
    let loading = std::time::Instant::now();
    let truth: Vec<Item> = (0..items).map(soak_item).collect();
    put_items(&client, "soak", truth.clone()).await;
    eprintln!("loaded {items} items in {:.0?}", loading.elapsed());

    let injected = Arc::new(Injected::default());
    let dynamodb = Proxy::start(db.port, dynamodb_faults(Arc::clone(&injected))).await;
    let s3_proxy = Proxy::start(s3.port, s3_faults(Arc::clone(&injected))).await;
    let to = "s3://lake/soak";
    let args: Vec<String> = [
        "snapshot",
        "soak",
        "--to",
        to,
        "--endpoint-url",
        &dynamodb.endpoint(),
        "--s3-endpoint-url",
        &s3_proxy.endpoint(),
        "--segments",
        "8",
        "--max-rcu",
        "1000000",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let started = std::time::Instant::now();
    let (stdout, stderr, status, peak_mib) =
        tokio::task::spawn_blocking(move || run_measured(&args))
            .await
            .unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "{status}: {stderr}");
    let summary: Value = serde_json::from_str(&stdout).expect("the summary is JSON");
    let load = |c: &AtomicU64| c.load(Ordering::SeqCst);
    eprintln!(
        "snapshot of {items} items: {wall:.1?}, peak RSS {peak_mib:.1} MiB; injected \
         {} throttles, {} resets, {} 500s, {} damaged bodies in {} Scans, {} of {} part \
         uploads failed",
        load(&injected.throttled),
        load(&injected.resets),
        load(&injected.errors),
        load(&injected.damaged),
        load(&injected.scans),
        load(&injected.failed_parts),
        load(&injected.parts),
    );
    assert!(load(&injected.damaged) > 0 && load(&injected.failed_parts) > 0);
    assert_eq!(summary["items"], items, "{summary}");
    assert_eq!(summary["throttled_requests"], load(&injected.throttled));

    let target = Target::open(
        &Destination::parse(to).unwrap(),
        Some(&aws_context(None).sdk),
        &S3Options {
            endpoint_url: Some(s3.endpoint()),
            region: None,
        },
    )
    .await
    .unwrap();
    assert_same_items(&truth, &read_snapshot(&target).await);
}
