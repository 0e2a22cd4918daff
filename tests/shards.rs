//! Split runs: `snapshot --shard I/N` processes (the real binary) over a 50,000-item table in
//! dynalite, one of them killed with SIGKILL and run again, then `ddbsnap commit`: every item
//! exactly once, value by value, one schema in every file; nothing a reader could take for a
//! result before the commit; the commit refused while a shard has not finished.

mod common;

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue as AV;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::{Destination, S3Options, Target};

const ITEMS: u64 = 50_000;
const SHARDS: u32 = 4;

/// Items of every kind of value. Rare ones add an attribute, or give `price` another type, so
/// that some shards' files are written with a narrower schema than the joined one.
fn test_item(i: u64) -> Item {
    let mut item = mixed_item(i);
    if i % 9_973 == 17 {
        item.insert("late".into(), n("12345678901234567890123456789012345678"));
    }
    if i == 31_337 {
        item.insert("price".into(), s("call us"));
    }
    item
}

fn shard_args(db: &Dynalite, to: &str, shard: u32, extra: &[&str]) -> Vec<String> {
    let shard = format!("{shard}/{SHARDS}");
    let mut args: Vec<String> = [
        "snapshot",
        "orders",
        "--to",
        to,
        "--endpoint-url",
        &db.endpoint(),
        "--segments",
        "8",
        "--file-size",
        "1",
        "--shard",
        &shard,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn commit_args(to: &str, extra: &[&str]) -> Vec<String> {
    let shards = SHARDS.to_string();
    let mut args: Vec<String> = ["commit", to, "--shards", &shards]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn local_target(dir: &std::path::Path) -> Target {
    Target::open(
        &Destination::parse(dir.to_str().unwrap()).unwrap(),
        None,
        &S3Options::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_and_a_commit_hold_every_item_once() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    put_items(&client, "orders", (0..ITEMS).map(test_item).collect()).await;
    let truth = scan_all(&client, "orders").await;
    assert_eq!(truth.len() as u64, ITEMS);

    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("orders");
    let to = to.to_str().unwrap();

    // Shards 0 and 1 run side by side; shard 2 is killed after its first file.
    let (first, second) = tokio::join!(
        run_until_killed(shard_args(&db, to, 0, &[]), |_| false),
        run_until_killed(shard_args(&db, to, 1, &[]), |_| false),
    );
    for run in [&first, &second] {
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(
            run.stdout.contains("finished (not committed"),
            "{}",
            run.stdout
        );
    }
    let killed = run_until_killed(shard_args(&db, to, 2, &[]), |event| {
        event["event"] == "checkpointed"
    })
    .await;
    assert!(
        killed.killed,
        "shard 2 ended before the kill: {}",
        killed.stderr
    );

    // Nothing is published, and a reader with no options sees no result yet.
    let target = local_target(std::path::Path::new(to)).await;
    let names = names_under(&target).await;
    assert!(!names.contains("_manifest.json"), "{names:?}");
    assert!(!names.contains("_checkpoint.json"), "{names:?}");
    assert!(
        names.contains("0-of-4.json"),
        "the shard records: {names:?}"
    );
    for name in names.iter().filter(|n| n.ends_with(".parquet")) {
        assert!(name.starts_with("part-s00"), "{name}: a shard's own name");
    }
    let in_folder: Vec<_> = std::fs::read_dir(to)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('_'))
        .collect();
    assert!(
        in_folder.is_empty(),
        "a reader of the folder sees no data before the commit: {in_folder:?}"
    );

    // The commit is refused, saying which shards are missing, and changes nothing.
    let refused = run_until_killed(commit_args(to, &[]), |_| false).await;
    assert_eq!(refused.code, Some(10), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("2 (running or stopped")
            && refused.stderr.contains("3 (not started)"),
        "{}",
        refused.stderr
    );
    assert_eq!(names_under(&target).await, names);

    // The killed shard, run again, continues its part; the last one runs.
    let again = run_until_killed(shard_args(&db, to, 2, &[]), |_| false).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("ddbsnap: resuming:"),
        "{}",
        again.stderr
    );
    let last = run_until_killed(shard_args(&db, to, 3, &[]), |_| false).await;
    assert_eq!(last.code, Some(0), "{}", last.stderr);

    // Every shard has finished: the commit joins them. One killed while it re-encodes the
    // narrower files leaves no result; run again, it finishes the same commit.
    let stopped = run_until_killed(commit_args(to, &[]), |e| e["event"] == "rewriting").await;
    assert!(stopped.killed, "the commit ended first: {}", stopped.stderr);
    assert!(!names_under(&target).await.contains("_manifest.json"));
    let committed = run_until_killed(commit_args(to, &["--json"]), |_| false).await;
    assert_eq!(committed.code, Some(0), "{}", committed.stderr);
    let summary: serde_json::Value = serde_json::from_str(committed.stdout.trim()).unwrap();
    assert_eq!(summary["items"], ITEMS);
    assert!(
        summary["files_rewritten"].as_u64().unwrap() > 0,
        "the shards without the rare values wrote narrower files: {summary}"
    );

    // Every item exactly once, every value exact, one schema in every file.
    let got = read_snapshot(&target).await;
    assert_same_items(&truth, &got);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.segments, 8);
    assert_eq!(manifest.totals.items_scanned, ITEMS);
    // Nothing but the manifest and the files it lists: no records, no stray files.
    let mut expected: HashSet<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    expected.insert("_manifest.json".into());
    assert_eq!(names_under(&target).await, expected, "stray files");
    // An independent reader with no options: every key once.
    let counted = run_python("count_keys.py", &[to.as_ref(), "pk".as_ref()]);
    let counted: serde_json::Value = serde_json::from_slice(&counted).unwrap();
    assert_eq!(counted["rows"], ITEMS, "{counted}");
    assert_eq!(counted["distinct"], ITEMS, "{counted}");

    // Committing again, or a shard retried late, changes nothing.
    let twice = run_until_killed(commit_args(to, &[]), |_| false).await;
    assert_eq!(twice.code, Some(0), "{}", twice.stderr);
    assert!(
        twice.stdout.contains("already committed"),
        "{}",
        twice.stdout
    );
    let late = run_until_killed(shard_args(&db, to, 1, &[]), |_| false).await;
    assert_eq!(late.code, Some(0), "{}", late.stderr);
    assert!(late.stdout.contains("already committed"), "{}", late.stdout);
    assert_eq!(names_under(&target).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_check_their_options_and_the_commit_its_count() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    put_items(&client, "orders", (0..2_000).map(test_item).collect()).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("orders");
    let to = to.to_str().unwrap();

    let bad = |args: Vec<String>, code: i32, says: &'static str| async move {
        let run = run_until_killed(args, |_| false).await;
        assert_eq!(run.code, Some(code), "{}", run.stderr);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    };
    bad(shard_args(&db, to, 4, &[]), 2, "below the number of shards").await;
    bad(
        shard_args(&db, to, 0, &["--overwrite"]),
        2,
        "--overwrite does not apply",
    )
    .await;
    bad(
        shard_args(&db, to, 0, &["--format", "delta"]),
        2,
        "needs --run-id",
    )
    .await;

    let first = run_until_killed(shard_args(&db, to, 0, &[]), |_| false).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    // The same shard again with other options is refused: its record says how it was made.
    bad(
        shard_args(&db, to, 0, &["--compression", "snappy"]),
        2,
        "cannot resume",
    )
    .await;
    // A commit with another shard count is refused.
    bad(commit_args_with(to, 2), 2, "split into 4 shards").await;
    // `auto` takes the index from an array job's environment: a Kubernetes Indexed Job here.
    let mut auto = shard_args(&db, to, 0, &[]);
    let at = auto.iter().position(|a| a == "--shard").unwrap();
    auto[at + 1] = "auto/4".into();
    let out = tokio::task::spawn_blocking(move || {
        ddbsnap_command(&auto)
            .env("JOB_COMPLETION_INDEX", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("shard 1/4 finished"), "{stdout}");
}

fn commit_args_with(to: &str, shards: u32) -> Vec<String> {
    ["commit", to, "--shards", &shards.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// An incremental pull split into shards: the shards share the `run=` folder `--run-id` names,
/// each checks the timestamp window on its part, and the commit writes one manifest with the
/// watermark over all of them; the next `--since last` continues from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pull_split_into_shards_keeps_one_watermark() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    let stamp = |i: u64| format!("2026-11-{:02}T{:02}:00:00Z", 10 + i % 20, i % 24);
    let items: Vec<Item> = (0..3_000)
        .map(|i| {
            let mut item = mixed_item(i);
            if i % 10 != 0 {
                item.insert("updated_at".into(), s(&stamp(i)));
            }
            item
        })
        .collect();
    put_items(&client, "orders", items.clone()).await;
    let since = "2026-11-20T00:00:00Z";
    let want: Vec<Item> = items
        .iter()
        .filter(|it| matches!(it.get("updated_at"), Some(AV::S(t)) if t.as_str() >= since))
        .cloned()
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pulls");
    let to = root.to_str().unwrap();
    let pull = ["--filter-attr", "updated_at", "--since", since];
    let run_id = ["--run-id", "2026-12-01T06:00:00Z"];
    for i in 0..SHARDS {
        let out = run_ddbsnap_to_end(shard_args(&db, to, i, &[&pull[..], &run_id].concat())).await;
        succeeded(&out);
    }
    let out = run_ddbsnap_to_end(commit_args(to, &[])).await;
    succeeded(&out);
    let run = root.join("run=2026-12-01T06-00-00Z");
    let target = local_target(&run).await;
    assert_same_items(&want, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    let watermark = manifest
        .watermark
        .expect("a pull's manifest has its watermark");
    assert_eq!(
        watermark.stats.missing, 300,
        "items without updated_at, over all shards"
    );
    let latest = want
        .iter()
        .filter_map(|it| match it.get("updated_at") {
            Some(AV::S(t)) => Some(t.clone()),
            _ => None,
        })
        .max()
        .unwrap();
    let seen = watermark
        .stats
        .max_seen
        .expect("the latest timestamp written")
        .value;
    assert!(seen.contains(&latest), "{seen} vs {latest}");

    // The next pull (not split) continues from that run's window.
    let next = run_ddbsnap_to_end(
        [
            "snapshot",
            "orders",
            "--to",
            to,
            "--endpoint-url",
            &db.endpoint(),
            "--filter-attr",
            "updated_at",
            "--since",
            "last",
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let summary: serde_json::Value = serde_json::from_str(succeeded(&next).trim()).unwrap();
    assert_eq!(summary["items"], 0, "nothing changed since: {summary}");
}
