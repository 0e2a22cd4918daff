//! Incremental and targeted pulls against dynalite, through the real binary: timestamp windows
//! on S and N attributes with their boundaries, `--since last` over consecutive runs under a
//! dataset root, projections, index scans, raw filters, and the errors of each.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Output;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::{Destination, Target};

async fn ddbsnap(args: Vec<String>) -> std::process::Output {
    run_ddbsnap_to_end(args).await
}

/// `ddbsnap snapshot TABLE --to TO --endpoint-url DB EXTRA...`
async fn snapshot(db: &Dynalite, table: &str, to: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["snapshot", table, "--to", to.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--endpoint-url".to_owned(), db.endpoint()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    ddbsnap(args).await
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Exit code and a phrase of the one error line.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(
        err.contains(needle),
        "stderr should mention '{needle}': {err}"
    );
}

async fn local(dir: &Path) -> Target {
    Target::open(&Destination::Local(dir.into()), None, &Default::default())
        .await
        .unwrap()
}

/// The committed runs under a dataset root, oldest first.
fn run_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut runs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("run="))
        .collect();
    runs.sort();
    runs
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).unwrap()).unwrap()
}

/// The snapshot's columns, in order.
async fn column_names(dir: &Path) -> Vec<String> {
    let m = ddbsnap::sink::reader::read_manifest(&local(dir).await)
        .await
        .unwrap();
    m.schema.columns.keys().cloned().collect()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn keys(items: &[Item]) -> HashSet<String> {
    items.iter().map(key_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_timestamps_boundaries_missing_and_invalid_values() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "events", None).await;
    let row = |k: &str, ts: Option<AV>| {
        let mut it = item(vec![("pk", s(k)), ("v", n("1.50"))]);
        if let Some(ts) = ts {
            it.insert("updated_at".into(), ts);
        }
        it
    };
    let items = vec![
        row("before", Some(s("2026-10-31T23:59:59.999Z"))),
        row("at-since", Some(s("2026-11-01T00:00:00Z"))),
        row("at-since-offset", Some(s("2026-11-01T00:00:00+00:00"))),
        row("at-since-fraction", Some(s("2026-11-01T00:00:00.000Z"))),
        row("inside", Some(s("2026-11-15T12:30:00.5Z"))),
        row("same-a", Some(s("2026-11-20T08:00:00Z"))),
        row("same-b", Some(s("2026-11-20T08:00:00Z"))),
        row("last-ms", Some(s("2026-11-30T23:59:59.999Z"))),
        row("at-until", Some(s("2026-12-01T00:00:00Z"))),
        row("after", Some(s("2026-12-02T00:00:00Z"))),
        row("missing", None),
        row("null", Some(AV::Null(true))),
        row("number", Some(n("1762000000"))),
        row("garbage", Some(s("2026-11-10 is not a time"))),
    ];
    put_items(&client, "events", items).await;
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        &db,
        "events",
        dir.path(),
        &[
            "--filter-attr",
            "updated_at",
            "--since",
            "2026-11-01T00:00:00Z",
            "--until",
            "2026-12-01",
        ],
    )
    .await;
    assert_ok(&out);
    assert!(
        stderr(&out).contains("left out 2 items without 'updated_at' and 2 whose"),
        "{}",
        stderr(&out)
    );
    let runs = run_dirs(dir.path());
    assert_eq!(runs.len(), 1, "one run under the dataset root");
    let got = read_snapshot(&local(&runs[0]).await).await;
    let want: HashSet<String> = [
        "at-since",
        "at-since-offset",
        "at-since-fraction",
        "inside",
        "same-a",
        "same-b",
        "last-ms",
    ]
    .iter()
    .map(|k| format!("S:{k}|-"))
    .collect();
    assert_eq!(keys(&got), want);
    let table: HashMap<String, Item> = scan_all(&client, "events")
        .await
        .into_iter()
        .map(|i| (key_of(&i), i))
        .collect();
    let expected: Vec<Item> = want.iter().map(|k| table[k].clone()).collect();
    assert_same_items(&expected, &got);

    let m = manifest(&runs[0]);
    let w = &m["watermark"];
    assert_eq!(w["attribute"], "updated_at");
    assert_eq!(w["format"], "iso");
    assert_eq!(w["since"], "2026-11-01T00:00:00Z");
    assert_eq!(w["until"], "2026-12-01T00:00:00Z");
    // The window ends at the run's start when --until is later (items written after the start
    // may not have been seen).
    let window_end: DateTime<Utc> = w["window_end"].as_str().unwrap().parse().unwrap();
    assert!(window_end <= Utc::now(), "{window_end}");
    assert_eq!(
        w["max_seen"]["value"],
        r#"{"S":"2026-11-30T23:59:59.999Z"}"#
    );
    assert_eq!(
        (w["missing"].as_u64(), w["invalid"].as_u64()),
        (Some(2), Some(2))
    );
    // The whole table was read (and paid for), 7 items written.
    assert_eq!(m["items_scanned"], 14);
    assert_eq!(m["items_written"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_timestamps_in_seconds_and_milliseconds() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "secs", None).await;
    create_table(&client, "millis", None).await;
    let base = 1_762_000_000u64;
    let secs: Vec<Item> = (0..10u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("k{i}"))),
                ("ts", n(&(base + i * 100).to_string())),
            ])
        })
        .collect();
    put_items(&client, "secs", secs).await;
    let millis: Vec<Item> = (0..10u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("k{i}"))),
                ("ts", n(&((base + i * 100) * 1000 + 7).to_string())),
            ])
        })
        .collect();
    put_items(&client, "millis", millis).await;

    // Seconds, detected: [base+200, base+500) holds k2, k3, k4.
    let dir = tempfile::tempdir().unwrap();
    let since = (base + 200).to_string();
    let until = (base + 500).to_string();
    let out = snapshot(
        &db,
        "secs",
        dir.path(),
        &["--filter-attr", "ts", "--since", &since, "--until", &until],
    )
    .await;
    assert_ok(&out);
    let run = &run_dirs(dir.path())[0];
    let got = keys(&read_snapshot(&local(run).await).await);
    assert_eq!(
        got,
        HashSet::from(["S:k2|-".into(), "S:k3|-".into(), "S:k4|-".into()])
    );
    assert_eq!(manifest(run)["watermark"]["format"], "epoch-s");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(": 3 items (of 10 scanned)"), "{summary}");

    // Combined with a raw filter: both apply.
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        &db,
        "secs",
        dir.path(),
        &[
            "--filter-attr",
            "ts",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "pk <> :k",
            "--values",
            r#"{":k":{"S":"k3"}}"#,
        ],
    )
    .await;
    assert_ok(&out);
    let run = &run_dirs(dir.path())[0];
    let got = keys(&read_snapshot(&local(run).await).await);
    assert_eq!(got, HashSet::from(["S:k2|-".into(), "S:k4|-".into()]));

    // Milliseconds, detected; bounds given as RFC 3339: k2 at base+200 s + 7 ms is inside.
    let dir = tempfile::tempdir().unwrap();
    let at =
        |secs: u64, ms: u32| iso(DateTime::from_timestamp(secs as i64, ms * 1_000_000).unwrap());
    let out = snapshot(
        &db,
        "millis",
        dir.path(),
        &[
            "--filter-attr",
            "ts",
            "--since",
            &at(base + 200, 7),
            "--until",
            &at(base + 400, 7),
        ],
    )
    .await;
    assert_ok(&out);
    let run = &run_dirs(dir.path())[0];
    let got = keys(&read_snapshot(&local(run).await).await);
    assert_eq!(got, HashSet::from(["S:k2|-".into(), "S:k3|-".into()]));
    let w = &manifest(run)["watermark"];
    assert_eq!(w["format"], "epoch-ms");
    assert_eq!(
        w["max_seen"]["value"],
        format!(r#"{{"N":"{}"}}"#, (base + 300) * 1000 + 7)
    );
}

/// The items as written to the table at one moment: key → item.
async fn table_state(db: &Dynalite, table: &str) -> HashMap<String, Item> {
    scan_all(&db.client(), table)
        .await
        .into_iter()
        .map(|i| (key_of(&i), i))
        .collect()
}

fn ts_of(item: &Item) -> DateTime<Utc> {
    match &item["updated_at"] {
        AV::S(s) => DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_last_over_three_runs_covers_every_change() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    let version = |i: u64, v: u64, at: DateTime<Utc>| {
        item(vec![
            ("pk", s(&format!("o{i:03}"))),
            ("version", n(&v.to_string())),
            ("updated_at", s(&iso(at))),
        ])
    };
    let day_ago = Utc::now() - TimeDelta::days(1);
    put_items(
        &client,
        "orders",
        (0..100)
            .map(|i| version(i, 1, day_ago + TimeDelta::seconds(i as i64)))
            .collect(),
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let pull = |since_last: bool| {
        let db = &db;
        let root = root.path().to_owned();
        async move {
            let mut extra = vec!["--filter-attr", "updated_at"];
            if since_last {
                extra.extend(["--since", "last"]);
            }
            let out = snapshot(db, "orders", &root, &extra).await;
            assert_ok(&out);
            // A run id has one-second resolution: keep runs apart.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    };

    // Run 1: everything so far.
    pull(false).await;
    // Writes between runs, stamped by the writer's clock as an application would.
    let changes_b: Vec<Item> = (90..130).map(|i| version(i, 2, Utc::now())).collect();
    put_items(&client, "orders", changes_b.clone()).await;
    pull(true).await;
    let changes_c: Vec<Item> = (120..140).map(|i| version(i, 3, Utc::now())).collect();
    put_items(&client, "orders", changes_c.clone()).await;
    pull(true).await;

    let runs = run_dirs(root.path());
    assert_eq!(runs.len(), 3, "{runs:?}");
    let mut per_run = Vec::new();
    for run in &runs {
        let w = manifest(run)["watermark"].clone();
        let items = read_snapshot(&local(run).await).await;
        per_run.push((w, items));
    }
    assert_eq!(per_run[0].1.len(), 100);
    // Each run after the first starts at the previous window end minus the 5 s overlap.
    for k in 1..3 {
        let prev_end: DateTime<Utc> = per_run[k - 1].0["window_end"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let since: DateTime<Utc> = per_run[k].0["since"].as_str().unwrap().parse().unwrap();
        assert_eq!(since, prev_end - TimeDelta::seconds(5));
        // No item outside the run's window.
        for item in &per_run[k].1 {
            assert!(ts_of(item) >= since, "{item:?} is before {since}");
        }
    }
    // Every change is in the first run whose window covers it.
    let run2 = keys(&per_run[1].1);
    let run3 = keys(&per_run[2].1);
    for it in &changes_b {
        assert!(
            run2.contains(&key_of(it)),
            "{} missing from run 2",
            key_of(it)
        );
    }
    for it in &changes_c {
        assert!(
            run3.contains(&key_of(it)),
            "{} missing from run 3",
            key_of(it)
        );
    }
    // Old, unchanged items are never pulled again.
    assert!(run2.iter().chain(&run3).all(|k| {
        let i: u64 = k[3..6].parse().unwrap();
        i >= 90
    }));
    // Items run 3 holds that changed before run 2 are overlap duplicates: same key and
    // timestamp as in run 2.
    let in_run2: HashMap<String, DateTime<Utc>> =
        per_run[1].1.iter().map(|i| (key_of(i), ts_of(i))).collect();
    let c_keys = keys(&changes_c);
    for item in &per_run[2].1 {
        if !c_keys.contains(&key_of(item)) {
            assert_eq!(in_run2.get(&key_of(item)), Some(&ts_of(item)), "{item:?}");
        }
    }
    // Latest version per key over all runs == the table now.
    let mut merged: HashMap<String, Item> = HashMap::new();
    for (_, items) in &per_run {
        for item in items {
            let key = key_of(item);
            if merged.get(&key).is_none_or(|m| ts_of(m) <= ts_of(item)) {
                merged.insert(key, item.clone());
            }
        }
    }
    let now: Vec<Item> = table_state(&db, "orders").await.into_values().collect();
    assert_same_items(&now, &merged.into_values().collect::<Vec<_>>());

    // A pull from a time after the latest run's window leaves a gap: refused (exit 11) with no
    // run written; --on-gap refresh reads the whole table instead, and --since last continues
    // from that read.
    let after = iso(Utc::now());
    let gapped = ["--filter-attr", "updated_at", "--since", after.as_str()];
    let out = snapshot(&db, "orders", root.path(), &gapped).await;
    assert_fails(&out, 11, "would be lost");
    assert!(
        stderr(&out).contains("pull on 'updated_at'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(run_dirs(root.path()).len(), 3);
    let refresh = [&gapped[..], &["--on-gap", "refresh"]].concat();
    let out = snapshot(&db, "orders", root.path(), &refresh).await;
    assert_ok(&out);
    assert!(stderr(&out).contains("warning: read the whole table (--on-gap refresh)"));
    let runs = run_dirs(root.path());
    let whole = read_snapshot(&local(&runs[3]).await).await;
    assert_same_items(&now, &whole);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    pull(true).await;
    assert_eq!(run_dirs(root.path()).len(), 5);
}

/// The first `--since last` run on an empty root has nothing to continue: it reads the whole
/// table (items without the attribute too) and says so; the next run pulls from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_since_last_run_reads_the_whole_table() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    let stamped = |i: u64, at: DateTime<Utc>| {
        item(vec![
            ("pk", s(&format!("o{i:03}"))),
            ("updated_at", s(&iso(at))),
        ])
    };
    let day_ago = Utc::now() - TimeDelta::days(1);
    let mut items: Vec<Item> = (0..50).map(|i| stamped(i, day_ago)).collect();
    items.push(item(vec![("pk", s("unstamped"))]));
    put_items(&client, "orders", items).await;
    let root = tempfile::tempdir().unwrap();
    let pull = ["--filter-attr", "updated_at", "--since", "last"];

    let out = snapshot(&db, "orders", root.path(), &pull).await;
    assert_ok(&out);
    assert!(
        stderr(&out).contains("has no earlier run to continue"),
        "{}",
        stderr(&out)
    );
    let runs = run_dirs(root.path());
    assert_eq!(runs.len(), 1);
    let first = manifest(&runs[0]);
    assert!(first["watermark"].is_null(), "{first}");
    assert_eq!(first["refreshed_at"], first["started_at"]);
    let got = read_snapshot(&local(&runs[0]).await).await;
    assert_same_items(&scan_all(&client, "orders").await, &got);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    put_items(&client, "orders", vec![stamped(7, Utc::now())]).await;
    let out = snapshot(&db, "orders", root.path(), &pull).await;
    assert_ok(&out);
    assert!(
        !stderr(&out).contains("reads the whole"),
        "{}",
        stderr(&out)
    );
    let runs = run_dirs(root.path());
    let second = manifest(&runs[1]);
    let started: DateTime<Utc> = first["started_at"].as_str().unwrap().parse().unwrap();
    let since: DateTime<Utc> = second["watermark"]["since"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(since, started - TimeDelta::seconds(5));
    assert_eq!(second["refreshed_at"], first["refreshed_at"]);
    let got = read_snapshot(&local(&runs[1]).await).await;
    assert_eq!(keys(&got), HashSet::from(["S:o007|-".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_with_reserved_and_dotted_names() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "people", Some(ScalarAttributeType::N)).await;
    let items: Vec<Item> = (0..50u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("p{}", i % 5))),
                ("sk", n(&i.to_string())),
                ("status", s(if i % 2 == 0 { "active" } else { "gone" })),
                ("a.b", n(&format!("{i}.25"))),
                ("name", s(&format!("name {i}"))),
                ("secret", s("not wanted")),
            ])
        })
        .collect();
    put_items(&client, "people", items.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(&db, "people", dir.path(), &["--columns", "status,a.b"]).await;
    assert_ok(&out);
    let got = read_snapshot(&local(dir.path()).await).await;
    let want: Vec<Item> = items
        .iter()
        .map(|i| {
            i.iter()
                .filter(|(k, _)| ["pk", "sk", "status", "a.b"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    assert_same_items(&want, &got);
    assert_eq!(
        column_names(dir.path()).await,
        ["pk", "sk", "a.b", "status"]
    );

    // A raw filter on a reserved word, combined with the projection.
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        &db,
        "people",
        dir.path(),
        &[
            "--columns",
            "name",
            "--filter",
            "#s = :v",
            "--names",
            r##"{"#s":"status"}"##,
            "--values",
            r#"{":v":{"S":"active"}}"#,
        ],
    )
    .await;
    assert_ok(&out);
    let got = read_snapshot(&local(dir.path()).await).await;
    assert_eq!(got.len(), 25);
    assert!(got.iter().all(|i| i.len() == 3 && i.contains_key("name")));
}

async fn create_indexed_table(db: &Dynalite) {
    let def = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    db.client()
        .create_table()
        .table_name("shop")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(def("pk", ScalarAttributeType::S))
        .attribute_definitions(def("sk", ScalarAttributeType::N))
        .attribute_definitions(def("status", ScalarAttributeType::S))
        .attribute_definitions(def("day", ScalarAttributeType::S))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by_status")
                .key_schema(key("status", KeyType::Hash))
                .projection(all.clone())
                .build()
                .unwrap(),
        )
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("by_day")
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("day", KeyType::Range))
                .projection(all)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_local_index_scans() {
    let db = Dynalite::start();
    create_indexed_table(&db).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let items: Vec<Item> = (0..60u64)
        .map(|i| {
            let mut it = item(vec![
                ("pk", s(&format!("c{}", i % 4))),
                ("sk", n(&i.to_string())),
                ("total", n(&format!("{i}.99"))),
            ]);
            if i % 3 == 0 {
                it.insert("status".into(), s("open"));
            }
            if i % 2 == 0 {
                it.insert("day".into(), s(&format!("2026-11-{:02}", 1 + i % 28)));
            }
            it
        })
        .collect();
    put_items(&db.client(), "shop", items.clone()).await;

    // The GSI holds the items that have `status` (sparse), with every attribute.
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(&db, "shop", dir.path(), &["--index", "by_status"]).await;
    assert_ok(&out);
    let want: Vec<Item> = items
        .iter()
        .filter(|i| i.contains_key("status"))
        .cloned()
        .collect();
    assert_same_items(&want, &read_snapshot(&local(dir.path()).await).await);
    let columns = column_names(dir.path()).await;
    assert_eq!(
        &columns[..3],
        ["pk", "sk", "status"],
        "table keys, then the index key"
    );

    // The LSI, read consistently: the items that have `day`.
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        &db,
        "shop",
        dir.path(),
        &["--index", "by_day", "--consistent-read"],
    )
    .await;
    assert_ok(&out);
    let want: Vec<Item> = items
        .iter()
        .filter(|i| i.contains_key("day"))
        .cloned()
        .collect();
    assert_same_items(&want, &read_snapshot(&local(dir.path()).await).await);

    // A GSI cannot be read consistently; an unknown index is named with the ones there are.
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        &db,
        "shop",
        dir.path(),
        &["--index", "by_status", "--consistent-read"],
    )
    .await;
    assert_fails(
        &out,
        2,
        "--consistent-read cannot be used on global secondary index 'by_status'",
    );
    let out = snapshot(&db, "shop", dir.path(), &["--index", "nope"]).await;
    assert_fails(
        &out,
        3,
        "table 'shop' has no index 'nope'; its indexes are: by_status, by_day",
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_and_timestamps_are_clear_errors() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "t01", None).await;
    put_items(
        &client,
        "t01",
        vec![item(vec![
            ("pk", s("a")),
            ("ts", s("2026-11-01T00:00:00Z")),
        ])],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("x");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--filter",
                "#s = = :v",
                "--names",
                r##"{"#s":"a"}"##,
                "--values",
                r#"{":v":{"S":"x"}}"#,
            ],
            "DynamoDB rejected the Scan of 't01'",
        ),
        (
            vec!["--filter", "#s = :v", "--values", r#"{":v":{"S":"x"}}"#],
            "--filter uses '#s', which --names does not define",
        ),
        (
            vec!["--filter", "a = :v", "--values", r#"{":v":"x"}"#],
            "is not a DynamoDB JSON value",
        ),
        (
            vec!["--filter", "a = :v", "--values", "not json"],
            "--values must be a JSON object",
        ),
        (
            vec!["--filter-attr", "ts", "--since", "last week"],
            "--since 'last week' is not a time",
        ),
        (
            vec!["--filter-attr", "ts", "--until", "2026-02-30"],
            "--until '2026-02-30' is not a time",
        ),
        (
            vec![
                "--filter-attr",
                "ts",
                "--since",
                "2026-11-02",
                "--until",
                "2026-11-01",
            ],
            "must be before --until",
        ),
        (
            vec!["--filter-attr", "nothing_has_this"],
            "none of the first 200 items read has it",
        ),
        (vec!["--since", "2026-11-01"], "--filter-attr"),
    ];
    for (extra, needle) in cases {
        let out = snapshot(&db, "t01", &to, &extra).await;
        assert_fails(&out, 2, needle);
        assert!(!to.join("_manifest.json").exists());
    }
}

async fn describe(db: &Dynalite, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["describe", "--endpoint-url", &db.endpoint()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    ddbsnap(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_provisioned_and_on_demand_tables() {
    let db = Dynalite::start();
    create_table_with(&db.client(), "prov", None, Some(100)).await;
    create_indexed_table(&db).await;

    let out = describe(&db, &["prov"]).await;
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "table         prov",
        "key           pk (S, HASH)",
        "billing       PROVISIONED (100 RCU provisioned)",
        "PITR          ",
        "at 50.0 RCU/s (50% of 100 provisioned RCU)",
        "refreshed about every 6 hours",
    ] {
        assert!(text.contains(needle), "'{needle}' in\n{text}");
    }
    let out = describe(&db, &["prov", "--read-fraction", "0.2", "--json"]).await;
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["read_budget"]["rcu_per_second"], 20.0);
    assert_eq!(json["table"]["capacity"]["provisioned_rcu"], 100);
    assert_eq!(json["segments"], 4);

    let out = describe(&db, &["shop"]).await;
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "key           pk (S, HASH), sk (N, RANGE)",
        "billing       PAY_PER_REQUEST (no declared read capacity)",
        "index         by_status (global, ALL): status (S, HASH)",
        "index         by_day (local, ALL): pk (S, HASH), day (S, RANGE)",
        "4000 RCU assumed",
    ] {
        assert!(text.contains(needle), "'{needle}' in\n{text}");
    }
    let out = describe(&db, &["shop", "--max-rcu", "300", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["read_budget"]["rcu_per_second"], 300.0);
    assert_eq!(json["read_budget"]["source"], "max_rcu");

    let out = describe(&db, &["missing"]).await;
    assert_fails(&out, 3, "table 'missing' not found");
    let out = describe(&db, &["shop", "--index", "nope"]).await;
    assert_fails(&out, 3, "has no index 'nope'");
}

/// Cancels the run (like Ctrl-C) at its first checkpoint with a data file.
struct StopAtFirstFile(ddbsnap::CancellationToken);

impl ddbsnap::progress::Progress for StopAtFirstFile {
    fn event(&self, event: &ddbsnap::progress::ProgressEvent) {
        if let ddbsnap::progress::ProgressEvent::Checkpointed { files, .. } = event
            && *files >= 1
        {
            self.0.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_run_blocks_the_next_until_resumed() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "feed", None).await;
    let at = Utc::now() - TimeDelta::hours(1);
    let items: Vec<Item> = (0..3000u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("f{i:04}"))),
                (
                    "updated_at",
                    s(&iso(at + TimeDelta::milliseconds(i as i64))),
                ),
                ("body", s(&random_text(i, 1000))),
            ])
        })
        .collect();
    put_items(&client, "feed", items).await;
    let root = tempfile::tempdir().unwrap();
    let config = ddbsnap::SnapshotConfig::builder("feed", root.path().to_str().unwrap())
        .segments(2)
        .target_file_bytes(1 << 20)
        .max_rcu(300.0)
        .read_fraction(1.0)
        .time_window(ddbsnap::config::TimeSpec {
            attribute: "updated_at".into(),
            format: None,
            since: None,
            until: None,
            overlap: ddbsnap::config::DEFAULT_OVERLAP,
        })
        .build()
        .unwrap();
    let cancel = ddbsnap::CancellationToken::new();
    let err = ddbsnap::Snapshot::new(config)
        .aws(db.aws())
        .target(local(root.path()).await)
        .progress(std::sync::Arc::new(StopAtFirstFile(cancel.clone())))
        .cancel(cancel)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 130, "{err}");

    let out = snapshot(
        &db,
        "feed",
        root.path(),
        &["--filter-attr", "updated_at", "--since", "last"],
    )
    .await;
    assert_fails(
        &out,
        8,
        "is an unfinished run of this dataset (or one still running)",
    );
    let out = snapshot(
        &db,
        "feed",
        root.path(),
        &["--filter-attr", "updated_at", "--resume"],
    )
    .await;
    assert_ok(&out);
    assert!(stderr(&out).contains("resuming: "), "{}", stderr(&out));
    let runs = run_dirs(root.path());
    assert_eq!(
        runs.len(),
        1,
        "the run was continued, not started anew: {runs:?}"
    );
    let got = read_snapshot(&local(&runs[0]).await).await;
    assert_same_items(&scan_all(&client, "feed").await, &got);
    assert_eq!(manifest(&runs[0])["runs"], 2);
}
