//! `ddbsnap sync` against moto server (DynamoDB and DynamoDB Streams, one shard that never
//! closes): the first sync loads the table and then reads its stream from the start of every
//! shard listed before the load; later ones merge only the stream's new records (inserts,
//! updates, deletes), and every version read by `deltalake` and DuckDB equals a Scan of the
//! table.

mod common;

use aws_sdk_dynamodb::types::StreamViewType;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ScalarAttributeType, StreamSpecification};
use common::*;
use ddbsnap::convert::Item;
use serde_json::Value;

/// Table `name` (pk S, sk N) on `moto`, with a stream of view type `view` when given.
async fn table_on(
    moto: &Moto,
    name: &str,
    view: Option<StreamViewType>,
) -> aws_sdk_dynamodb::Client {
    let client = aws_context(Some(moto.endpoint())).dynamodb;
    create_table(&client, name, Some(ScalarAttributeType::N)).await;
    if let Some(view) = view {
        let spec = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(view)
            .build()
            .unwrap();
        client
            .update_table()
            .table_name(name)
            .stream_specification(spec)
            .send()
            .await
            .unwrap();
    }
    client
}

fn order(i: u64, version: u64) -> Item {
    item(vec![
        ("pk", s(&format!("c{}", i % 7))),
        ("sk", n(&i.to_string())),
        ("amount", n(&format!("{}.{:02}", i * 3, version % 100))),
        ("version", n(&version.to_string())),
        (
            "customer",
            AV::M(item(vec![
                ("name", s(&format!("näme {i}"))),
                ("tier", n("2")),
            ])),
        ),
    ])
}

/// Delete the item [`order`] `i` is.
async fn delete_order(client: &aws_sdk_dynamodb::Client, i: u64) {
    client
        .delete_item()
        .table_name("orders")
        .key("pk", s(&format!("c{}", i % 7)))
        .key("sk", n(&i.to_string()))
        .send()
        .await
        .unwrap();
}

fn sync_args(moto: &Moto, table: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "sync",
        "orders",
        "--to",
        table.to_str().unwrap(),
        "--endpoint-url",
        &moto.endpoint(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

async fn synced(args: Vec<String>) -> Value {
    let out = run_ddbsnap_to_end(args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The MERGE counts of a sync's commits, summed.
fn merged(summary: &Value) -> (u64, u64, u64) {
    let mut sums = (0, 0, 0);
    for commit in summary["commits"].as_array().unwrap() {
        let m = &commit["delta"]["merge"];
        sums.0 += m["rows_inserted"].as_u64().unwrap();
        sums.1 += m["rows_updated"].as_u64().unwrap();
        sums.2 += m["rows_deleted"].as_u64().unwrap();
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_loads_the_table_then_merges_every_change_of_its_stream() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    let table = dir.path().join("orders");
    put_items(&client, "orders", (0..30).map(|i| order(i, 1)).collect()).await;

    // First sync: a full load (version 0), then the stream from its start (version 1): the
    // 30 inserts the load already holds, applied again to the same images.
    let first = synced(sync_args(&moto, &table, &[])).await;
    assert_eq!(first["bootstrap"]["delta"]["version"], 0, "{first}");
    assert_eq!(first["records"], 30, "{first}");
    assert_eq!(first["version"], 1, "{first}");
    assert_eq!(merged(&first), (0, 30, 0), "{first}");
    let expected = scan_all(&client, "orders").await;
    assert_version_holds(&table, 1, &expected);
    assert_same_items(&expected, &delta_items(&table, 1).await);

    // Inserts, updates (one key five times), deletes: the next sync reads only those.
    put_items(&client, "orders", (30..34).map(|i| order(i, 1)).collect()).await;
    for version in 2..7 {
        put_items(&client, "orders", vec![order(3, version)]).await;
    }
    put_items(&client, "orders", vec![order(4, 2), order(5, 2)]).await;
    for i in [10u64, 11] {
        delete_order(&client, i).await;
    }
    let second = synced(sync_args(&moto, &table, &[])).await;
    assert!(second["bootstrap"].is_null(), "no second load: {second}");
    assert_eq!(second["records"], 4 + 5 + 2 + 2, "{second}");
    assert_eq!(merged(&second), (4, 3, 2), "{second}");
    let expected = scan_all(&client, "orders").await;
    assert_version_holds(&table, 2, &expected);
    assert_same_items(&expected, &delta_items(&table, 2).await);

    // describe shows the stream: its view type, shards and the age of its oldest record.
    let described = run_ddbsnap_to_end(
        [
            "describe",
            "orders",
            "--endpoint-url",
            &moto.endpoint(),
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    let stream = &described["stream"];
    assert_eq!(stream["view_type"], "NEW_AND_OLD_IMAGES", "{described}");
    assert_eq!(
        (stream["shards"].as_u64(), stream["open_shards"].as_u64()),
        (Some(1), Some(1))
    );
    let age = stream["oldest_record_age_seconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&age), "{described}");
    assert_eq!(stream["arn"], first["stream"]);

    // Each commit's positions hold from when its sync listed the shards (a table synced every
    // few minutes never ages past the stream's 24 hours).
    let listed_at = |version: u64| -> chrono::DateTime<chrono::Utc> {
        commit_record(&table, version)["stream"]["listed_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        listed_at(2) > listed_at(0),
        "{} {}",
        listed_at(2),
        listed_at(0)
    );

    // Nothing new: no record read, the table unchanged.
    let third = synced(sync_args(&moto, &table, &[])).await;
    assert_eq!(third["records"], 0, "{third}");
    let version = third["version"].as_u64().unwrap();
    assert_version_holds(&table, version, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_stream_of_new_images_is_refused_with_the_way_to_enable_one() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let table = dir.path().join("orders");
    let client = table_on(&moto, "orders", None).await;
    put_items(&client, "orders", (0..5).map(|i| order(i, 1)).collect()).await;
    let out = run_ddbsnap_to_end(sync_args(&moto, &table, &[])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES")
            && err.contains("--enable-stream"),
        "{err}"
    );
    assert!(!table.exists(), "nothing written");
    let out = run_ddbsnap_to_end(sync_args(&moto, &table, &["--overwrite"])).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --enable-stream gives it one, then syncs.
    let summary = synced(sync_args(&moto, &table, &["--enable-stream"])).await;
    assert_eq!(summary["bootstrap"]["items"], 5, "{summary}");
    assert_version_holds(
        &table,
        summary["version"].as_u64().unwrap(),
        &scan_all(&client, "orders").await,
    );

    // A stream of keys only cannot rebuild items.
    let keys_only = table_on(&moto, "keys_only", Some(StreamViewType::KeysOnly)).await;
    drop(keys_only);
    let mut args = sync_args(&moto, &dir.path().join("k"), &[]);
    args[1] = "keys_only".into();
    let out = run_ddbsnap_to_end(args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("KEYS_ONLY") && err.contains("NEW_AND_OLD_IMAGES"),
        "{err}"
    );
}

/// The rows of the table of changes at `dir` (its version after the sync `summary`), checked to hold
/// each sequence number once; with how many rows each `_op` has.
async fn change_rows(dir: &std::path::Path, summary: &Value) -> (Vec<Item>, Vec<(String, usize)>) {
    let version = &summary["changes_version"];
    let rows = delta_items(
        dir,
        version
            .as_u64()
            .unwrap_or_else(|| panic!("no version of the table of changes: {summary}")),
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    let mut ops = std::collections::BTreeMap::<String, usize>::new();
    for row in &rows {
        let AV::S(seq) = &row["_seq"] else {
            panic!("_seq: {row:?}")
        };
        assert!(seen.insert(seq.clone()), "sequence number {seq} twice");
        let AV::S(op) = &row["_op"] else {
            panic!("_op: {row:?}")
        };
        *ops.entry(op.clone()).or_default() += 1;
    }
    (rows, ops.into_iter().collect())
}

/// `--changes`: every record read is appended once to a second Delta table (keys, new image,
/// `_op`, `_old`, `_seq`, `_write_time`), read by `deltalake` and polars; after a full
/// refresh the Delta table catches up to it without appending twice; a sync without
/// `--changes` leaves it behind (exit code 12 until `--on-gap force`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_appended_once_as_rows_of_a_second_table() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    let (table, changes) = (dir.path().join("orders"), dir.path().join("changes"));
    let with_changes = ["--changes", changes.to_str().unwrap()];
    put_items(&client, "orders", (0..20).map(|i| order(i, 1)).collect()).await;
    let first = synced(sync_args(&moto, &table, &with_changes)).await;
    assert_eq!(first["records"], 20, "{first}");
    let (rows, ops) = change_rows(&changes, &first).await;
    assert_eq!(ops, [("insert".to_owned(), 20)], "{first}");
    let mut images: Vec<Item> = rows
        .into_iter()
        .map(|mut r| {
            for c in ["_op", "_seq", "_write_time"] {
                r.remove(c).unwrap_or_else(|| panic!("{c}"));
            }
            r
        })
        .collect();
    images.sort_by_key(|i| format!("{:?}", (&i["pk"], &i["sk"])));
    assert_same_items(&scan_all(&client, "orders").await, &images);

    // Updates carry the old image, deletes the keys and the old image.
    put_items(&client, "orders", vec![order(3, 2), order(4, 2)]).await;
    delete_order(&client, 5).await;
    let second = synced(sync_args(&moto, &table, &with_changes)).await;
    let (rows, ops) = change_rows(&changes, &second).await;
    let ops: Vec<(&str, usize)> = ops.iter().map(|(o, n)| (o.as_str(), *n)).collect();
    assert_eq!(
        ops,
        [("delete", 1), ("insert", 20), ("update", 2)],
        "{second}"
    );
    let deleted = rows.iter().find(|r| r["_op"] == s("delete")).unwrap();
    let AV::M(old) = &deleted["_old"] else {
        panic!("{deleted:?}")
    };
    assert_eq!(old["version"], n("1"));
    assert!(
        !deleted.contains_key("amount"),
        "a delete has no new image: {deleted:?}"
    );

    // A full refresh reads the stream from its start again: into the Delta table, up to
    // where the table of changes is, without appending those records twice.
    put_items(&client, "orders", vec![order(6, 3)]).await;
    let refreshed = synced(sync_args(
        &moto,
        &table,
        &[&with_changes[..], &["--refresh"]].concat(),
    ))
    .await;
    assert!(!refreshed["bootstrap"].is_null(), "{refreshed}");
    let (_, ops) = change_rows(&changes, &refreshed).await;
    assert_eq!(ops.iter().map(|(_, n)| n).sum::<usize>(), 24, "{refreshed}");
    let expected = scan_all(&client, "orders").await;
    let version = refreshed["version"].as_u64().unwrap();
    assert_version_holds(&table, version, &expected);

    // A sync without --changes leaves the table of changes behind: a gap, exit code 12, until
    // --on-gap force continues it.
    put_items(&client, "orders", vec![order(7, 4)]).await;
    synced(sync_args(&moto, &table, &[])).await;
    put_items(&client, "orders", vec![order(8, 4)]).await;
    let out = run_ddbsnap_to_end(sync_args(&moto, &table, &with_changes)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(err.contains("--on-gap force"), "{err}");
    let forced = synced(sync_args(
        &moto,
        &table,
        &[&with_changes[..], &["--on-gap", "force"]].concat(),
    ))
    .await;
    let (_, ops) = change_rows(&changes, &forced).await;
    assert_eq!(ops.iter().map(|(_, n)| n).sum::<usize>(), 25, "{forced}");

    // The table of changes is not the table itself.
    let mut same = sync_args(&moto, &table, &["--changes", table.to_str().unwrap()]);
    same.retain(|a| a != "--json");
    let out = run_ddbsnap_to_end(same).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--bootstrap export`: refused without `--export-to`, with `--export-to` alone, and while
/// point-in-time recovery is off (nothing written); with it on, the load starts an export at
/// `--export-to` through the control plane (moto writes no manifest, so the conversion stops
/// there, saying so, with no version of the table written; the conversion itself is the one
/// `snapshot --mode export` runs, tested on exports in AWS's layout in tests/export.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_export_starts_an_export_and_is_refused_without_what_it_needs() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    moto.create_bucket("exports");
    put_items(&client, "orders", (0..5).map(|i| order(i, 1)).collect()).await;
    let table = dir.path().join("orders");
    let export = ["--bootstrap", "export", "--export-to", "s3://exports/raw"];
    let s3 = ["--s3-endpoint-url", &moto.endpoint()];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--bootstrap", "export"], "needs --export-to"),
        (
            vec!["--export-to", "s3://exports/raw"],
            "needs --bootstrap export",
        ),
        (
            [&export[..], &["--consistent-read"]].concat(),
            "--consistent-read is for a Scan",
        ),
        (
            [&export[..], &s3[..]].concat(),
            "point-in-time recovery is off",
        ),
    ];
    for (extra, needle) in cases {
        let out = run_ddbsnap_to_end(sync_args(&moto, &table, &extra)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!table.exists(), "{extra:?}: a refused sync writes nothing");
    }
    enable_pitr(&client, "orders").await;
    let out = run_ddbsnap_to_end(sync_args(&moto, &table, &[&export[..], &s3[..]].concat())).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export s3://exports/raw/AWSDynamoDB/") && err.contains("manifest-summary"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(!table.join("_delta_log").exists(), "{err}");
}

/// Run `args` with `--progress json`, killed (SIGKILL) at the `nth` event named `event`.
async fn killed_at(args: Vec<String>, event: &'static str, nth: usize) -> Run {
    let mut seen = 0;
    run_until_killed(args, move |e| {
        seen += usize::from(e["event"] == event);
        seen == nth
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_during_its_load_or_its_commits_is_finished_by_the_next_one() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    let table = dir.path().join("orders");
    put_items(&client, "orders", (0..400).map(|i| order(i, 1)).collect()).await;
    // Killed as the load writes its first file (small files: several), then synced again: the
    // load is resumed and the stream read from the shards listed before it.
    let small = ["--file-size", "1", "--row-group-size", "1"];
    let killed = killed_at(sync_args(&moto, &table, &small), "file_written", 1).await;
    assert!(killed.killed, "{}", killed.stderr);
    put_items(&client, "orders", (400..410).map(|i| order(i, 1)).collect()).await;
    let resumed = synced(sync_args(&moto, &table, &small)).await;
    assert!(!resumed["bootstrap"].is_null(), "{resumed}");
    let expected = scan_all(&client, "orders").await;
    let version = resumed["version"].as_u64().unwrap();
    assert_version_holds(&table, version, &expected);

    // Changes merged three records at a time, killed as the second commit starts: the next
    // sync finishes (or finds committed) that run and reads the rest, once.
    for version in 2..4 {
        put_items(
            &client,
            "orders",
            (0..5).map(|i| order(i, version)).collect(),
        )
        .await;
    }
    let mut args = sync_args(&moto, &table, &["--max-records", "3"]);
    args.retain(|a| a != "--json");
    let killed = killed_at(args, "committing", 2).await;
    assert!(killed.killed, "{}", killed.stderr);
    let after = synced(sync_args(&moto, &table, &["--max-records", "3"])).await;
    let expected = scan_all(&client, "orders").await;
    let version = after["version"].as_u64().unwrap();
    assert_version_holds(&table, version, &expected);
    assert_same_items(&expected, &delta_items(&table, version).await);

    // Ctrl-C during a load (here of --refresh) interrupts it, as a load cannot commit half a
    // table: exit 130, and the way on is the same sync again (sync takes neither --resume nor
    // --overwrite), which finishes the load.
    // (At 4 RCU/s the load takes seconds: the signal comes after its first page.)
    let slow = ["--refresh", "--max-rcu", "4", "--read-fraction", "1"];
    let interrupted = run_until_signalled(sync_args(&moto, &table, &slow), "INT", move |e| {
        e["event"] == "page"
    })
    .await;
    assert_eq!(interrupted.code, Some(130), "{}", interrupted.stderr);
    assert!(
        interrupted.stderr.contains("run the same sync again")
            && !interrupted.stderr.contains("--overwrite"),
        "{}",
        interrupted.stderr
    );
    let finished = synced(sync_args(&moto, &table, &small)).await;
    assert_eq!(finished["bootstrap"]["runs"], 2, "{finished}");
    let version = finished["version"].as_u64().unwrap();
    assert_version_holds(&table, version, &expected);
}

/// The test's table: its items on moto, and each change's stream record on the fault server.
struct Model {
    client: aws_sdk_dynamodb::Client,
    stream: common::streams::FaultStream,
    items: std::collections::BTreeMap<String, Item>,
    /// Every change recorded, in stream order: its shard, sequence number, key and new image
    /// (none for a delete).
    log: Vec<(String, u128, String, Option<Item>)>,
}

fn key_of(it: &Item) -> (Item, String) {
    let keys = item(vec![("pk", it["pk"].clone()), ("sk", it["sk"].clone())]);
    let text = format!("{:?}/{:?}", it["pk"], it["sk"]);
    (keys, text)
}

impl Model {
    /// Table `orders` on `moto` with a stream, whose records the fault server serves.
    async fn start(moto: &Moto) -> Model {
        let client = table_on(moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
        let arn = client
            .describe_table()
            .table_name("orders")
            .send()
            .await
            .unwrap()
            .table
            .and_then(|t| t.latest_stream_arn)
            .unwrap();
        Model {
            client,
            stream: common::streams::FaultStream::start(&arn),
            items: Default::default(),
            log: Vec::new(),
        }
    }

    /// Put `items` in batches, each with its stream record.
    async fn put_all(&mut self, items: Vec<Item>) {
        put_items(&self.client, "orders", items.clone()).await;
        for it in items {
            self.recorded(it);
        }
    }

    async fn put(&mut self, it: Item) {
        put_items(&self.client, "orders", vec![it.clone()]).await;
        self.recorded(it);
    }

    /// The stream record of `it` put (none when it did not change, as DynamoDB writes none).
    fn recorded(&mut self, it: Item) {
        let (keys, text) = key_of(&it);
        let old = self.items.insert(text.clone(), it.clone());
        if old.as_ref() != Some(&it) {
            let (shard, seq) = self.stream.record(&keys, Some(&it), old.as_ref(), false);
            self.log.push((shard, seq, text, Some(it)));
        }
    }

    async fn delete(&mut self, i: u64, by_ttl: bool) {
        let (keys, text) = key_of(&order(i, 0));
        delete_order(&self.client, i).await;
        // ... and a delete only of an item that was there.
        if let Some(old) = self.items.remove(&text) {
            let (shard, seq) = self.stream.record(&keys, None, Some(&old), by_ttl);
            self.log.push((shard, seq, text, None));
        }
    }

    /// The table as the changes up to each shard's position in `shards` (a commit's
    /// `stream.shards`: `"done"`, `{"after": "<sequence number>"}`, `"start"`) made it.
    fn up_to(&self, shards: &Value) -> Vec<Item> {
        let mut table = std::collections::BTreeMap::new();
        for (shard, seq, key, image) in &self.log {
            let applied = match &shards[shard] {
                Value::String(s) => s == "done",
                Value::Object(o) => o["after"].as_str().unwrap().parse::<u128>().unwrap() >= *seq,
                _ => false,
            };
            match (applied, image) {
                (false, _) => {}
                (true, Some(it)) => {
                    table.insert(key.clone(), it.clone());
                }
                (true, None) => {
                    table.remove(key);
                }
            }
        }
        table.into_values().collect()
    }
}

/// ddbsnap's record of version `version` of the Delta table at `dir` (`commitInfo.ddbsnap`).
fn commit_record(dir: &std::path::Path, version: u64) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("_delta_log/{version:020}.json"))).unwrap();
    let info = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("commitInfo").cloned())
        .unwrap();
    serde_json::from_str(info["ddbsnap"].as_str().unwrap()).unwrap()
}

/// The latest version of the Delta table at `dir`, and the stream positions it records.
fn latest_commit(dir: &std::path::Path) -> (u64, Value) {
    let version = latest_version(dir);
    (
        version,
        commit_record(dir, version)["stream"]["shards"].clone(),
    )
}

/// Run `sync` with DynamoDB on moto and DynamoDB Streams on the fault server (each service's
/// own endpoint variable, as users split them).
async fn sync_split(
    moto: &Moto,
    fault: &str,
    table: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = sync_args(moto, table, extra);
    let at = args.iter().position(|a| a == "--endpoint-url").unwrap();
    args.drain(at..at + 2);
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint()),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", fault.to_owned()),
    ];
    tokio::task::spawn_blocking(move || ddbsnap_command(&args).envs(env).output().unwrap())
        .await
        .unwrap()
}

fn ok(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// On the fault server: shards that split twice while writes go on (a key changed in the parent
/// and again in each generation), LimitExceeded, an expired iterator, DescribeStream one shard
/// per page; deletes by Time to Live, deleted or kept; records trimmed before a sync read them
/// (exit code 12; --on-gap refresh recovers); a table with a new stream (exit code 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_faults_ttl_deletes_and_gaps_on_a_stream_server_of_our_own() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let mut model = Model::start(&moto).await;
    let (client, fault) = (model.client.clone(), model.stream.endpoint());
    let table = dir.path().join("orders");
    for i in 0..20 {
        model.put(order(i, 1)).await;
    }
    let first = ok(sync_split(&moto, &fault, &table, &[]).await);
    assert_eq!(first["records"], 20, "{first}");
    let holds = |expected: Vec<Item>, version: u64| {
        assert_version_holds(&table, version, &expected);
    };
    holds(
        scan_all(&client, "orders").await,
        first["version"].as_u64().unwrap(),
    );

    // Two splits while writing; faults on the next reads.
    model.put(order(3, 2)).await;
    model.stream.split();
    model.put(order(3, 3)).await;
    for i in 20..26 {
        model.put(order(i, 1)).await;
    }
    model.delete(5, false).await;
    model.stream.split();
    model.put(order(3, 4)).await;
    model.put(order(21, 2)).await;
    assert_eq!(model.stream.shard_count(), 7);
    model.stream.faults(2, 1, 1);
    let second = ok(sync_split(&moto, &fault, &table, &[]).await);
    assert_eq!(second["records"], 11, "every change once: {second}");
    assert_eq!(
        merged(&second),
        (6, 1, 1),
        "key 21 inserted then changed: {second}"
    );
    assert!(
        model.stream.calls("DescribeStream") >= 7,
        "one shard per page"
    );
    // Per shard: the records read from it and how old the newest was at its commit.
    let shards = second["shards"].as_array().unwrap();
    let per_shard: u64 = shards.iter().map(|s| s["records"].as_u64().unwrap()).sum();
    assert_eq!(per_shard, 11, "{second}");
    assert!(shards.len() >= 3, "the parent and children read: {second}");
    assert!(
        shards
            .iter()
            .all(|s| s["lag_seconds"].as_f64().unwrap() < 600.0)
    );
    holds(
        scan_all(&client, "orders").await,
        second["version"].as_u64().unwrap(),
    );

    // Deletes by Time to Live: deletes by default, kept with --keep-expired.
    model.delete(7, true).await;
    let third = ok(sync_split(&moto, &fault, &table, &[]).await);
    assert_eq!(
        (third["expired_deletes"].as_u64(), merged(&third).2),
        (Some(1), 1)
    );
    holds(
        scan_all(&client, "orders").await,
        third["version"].as_u64().unwrap(),
    );
    let kept = order(8, 1);
    model.delete(8, true).await;
    let fourth = ok(sync_split(&moto, &fault, &table, &["--keep-expired"]).await);
    assert_eq!(merged(&fourth).2, 0, "{fourth}");
    let mut expected = scan_all(&client, "orders").await;
    expected.push(kept);
    holds(expected, fourth["version"].as_u64().unwrap());

    // Records trimmed before a sync read them: a gap (exit 12, nothing written), then
    // --on-gap refresh loads the table again.
    model.put(order(30, 1)).await;
    model.stream.trim();
    let version = fourth["version"].as_u64().unwrap();
    let gap = sync_split(&moto, &fault, &table, &[]).await;
    let err = String::from_utf8_lossy(&gap.stderr);
    assert_eq!(gap.status.code(), Some(12), "{err}");
    assert!(err.contains("trimmed") || err.contains("dropped"), "{err}");
    assert!(
        !table
            .join(format!("_delta_log/{:020}.json", version + 1))
            .exists()
    );
    let recovered = ok(sync_split(&moto, &fault, &table, &["--on-gap", "refresh"]).await);
    assert!(!recovered["bootstrap"].is_null(), "{recovered}");
    holds(
        scan_all(&client, "orders").await,
        recovered["version"].as_u64().unwrap(),
    );

    // Records trimmed while a sync reads them (its iterator points at trimmed records after
    // its first page): a gap, exit 12, with part of the run written; --on-gap refresh loads
    // the table again and drops that run, and the syncs after it read on from the load.
    for i in 0..1500 {
        model.put(order(40 + i, 2)).await;
    }
    model.stream.trim_after(1);
    let gap = sync_split(&moto, &fault, &table, &[]).await;
    let err = String::from_utf8_lossy(&gap.stderr);
    assert_eq!(gap.status.code(), Some(12), "{err}");
    assert!(err.contains("trimmed"), "{err}");
    let recovered = ok(sync_split(&moto, &fault, &table, &["--on-gap", "refresh"]).await);
    assert!(!recovered["bootstrap"].is_null(), "{recovered}");
    model.put(order(41, 3)).await;
    let after = ok(sync_split(&moto, &fault, &table, &[]).await);
    assert!(after["bootstrap"].is_null(), "{after}");
    holds(
        scan_all(&client, "orders").await,
        after["version"].as_u64().unwrap(),
    );

    // The table dropped and created again: a new stream, whose start says nothing of the
    // changes in between. A gap (exit 12) until --on-gap refresh loads it again. (The stream
    // server keeps serving its stream: trimmed, it starts empty, as a new stream does.)
    model.stream.trim();
    client
        .delete_table()
        .table_name("orders")
        .send()
        .await
        .unwrap();
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    put_items(&client, "orders", (0..4).map(|i| order(i, 9)).collect()).await;
    let gap = sync_split(&moto, &fault, &table, &[]).await;
    let err = String::from_utf8_lossy(&gap.stderr);
    assert_eq!(gap.status.code(), Some(12), "{err}");
    assert!(err.contains("new stream"), "{err}");
    let recovered = ok(sync_split(&moto, &fault, &table, &["--on-gap", "refresh"]).await);
    holds(
        scan_all(&client, "orders").await,
        recovered["version"].as_u64().unwrap(),
    );
}

/// The hand-off: the first sync is paused in the middle of its full load while writers change
/// the table (updates of rows the load has and has not read yet, deletes, inserts, one key
/// many times); the stream, read from before the load, brings every one of them, so the table
/// equals DynamoDB's once the sync ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_the_load_are_merged_from_the_stream() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    let table = dir.path().join("orders");
    put_items(&client, "orders", (0..600).map(|i| order(i, 1)).collect()).await;
    let writer = client.clone();
    let mut args = sync_args(
        &moto,
        &table,
        &[
            "--file-size",
            "1",
            "--row-group-size",
            "1",
            "--segments",
            "4",
            "--concurrency",
            "1",
        ],
    );
    args.retain(|a| a != "--json");
    let run = run_pausing(
        args,
        |e| e["event"] == "page",
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                put_items(
                    &writer,
                    "orders",
                    (0..600).step_by(7).map(|i| order(i, 2)).collect(),
                )
                .await;
                for version in 3..8 {
                    put_items(&writer, "orders", vec![order(599, version)]).await;
                }
                put_items(&writer, "orders", (600..620).map(|i| order(i, 1)).collect()).await;
                for i in (1..600).step_by(11) {
                    delete_order(&writer, i).await;
                }
            });
        },
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let expected = scan_all(&client, "orders").await;
    let version = latest_version(&table);
    assert_version_holds(&table, version, &expected);
    assert_same_items(&expected, &delta_items(&table, version).await);
}

/// `--follow --commit-every 1s` under a steady write load commits every second; SIGTERM, sent
/// once the writers have stopped and a commit has landed after them, commits what was read and
/// exits 0, with the table equal to DynamoDB's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_commits_on_an_interval_and_sigterm_stops_it_cleanly() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let client = table_on(&moto, "orders", Some(StreamViewType::NewAndOldImages)).await;
    let table = dir.path().join("orders");
    put_items(&client, "orders", (0..50).map(|i| order(i, 1)).collect()).await;
    let writing_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::clone(&writing_done);
    let writer = client.clone();
    let writers = tokio::spawn(async move {
        for round in 0..8u64 {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let batch = (0..5).map(|i| order(i * 9 + round, round + 2)).collect();
            put_items(&writer, "orders", batch).await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let mut args = sync_args(&moto, &table, &["--follow", "--commit-every", "1s"]);
    args.retain(|a| a != "--json");
    let mut after_writers = 0;
    let run = run_until_signalled(args, "TERM", move |e| {
        if e["event"] == "committed" && writing_done.load(std::sync::atomic::Ordering::SeqCst) {
            after_writers += 1;
        }
        after_writers == 2
    })
    .await;
    writers.await.unwrap();
    assert!(run.killed, "{}", run.stderr);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let versions = latest_version(&table);
    assert!(versions >= 4, "a load and several commits: {versions}");
    let expected = scan_all(&client, "orders").await;
    assert_version_holds(&table, versions, &expected);
}

/// A 10,000-item table, then twenty rounds of random writes (inserts, updates, deletes,
/// deletes by Time to Live, one hot key), the stream splitting three times, each round
/// followed by a sync with a table of changes, three of them killed (SIGKILL) while reading or
/// committing and finished by the next: after every sync, killed or not, the Delta table equals
/// the test's model of the table up to each shard's committed position (a Scan, once a sync
/// has read everything), and the table of changes holds every record of the stream exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_syncs_splits_and_kills_converge() {
    let (moto, dir) = (Moto::start(), tempfile::tempdir().unwrap());
    let mut model = Model::start(&moto).await;
    let (client, fault) = (model.client.clone(), model.stream.endpoint());
    let table = dir.path().join("orders");
    let changes = dir.path().join("changes");
    model
        .put_all((0..10_000).map(|i| order(i, 1)).collect())
        .await;
    let with_changes = ["--changes", changes.to_str().unwrap()];
    let loaded = ok(sync_split(&moto, &fault, &table, &with_changes).await);
    assert_eq!(loaded["records"], 10_000, "{loaded}");
    fastrand::seed(20261206);
    let mut next = 10_000u64;
    let mut last = loaded;
    for round in 0..20u64 {
        for _ in 0..40 {
            match fastrand::u8(..10) {
                0..=3 => {
                    model.put(order(next, round)).await;
                    next += 1;
                }
                4..=6 => model.put(order(fastrand::u64(..next), round + 10)).await,
                7 => {
                    model
                        .put(order(0, round * 100 + fastrand::u64(..100)))
                        .await
                }
                8 => model.delete(fastrand::u64(1..next), false).await,
                _ => model.delete(fastrand::u64(1..next), true).await,
            }
        }
        if [3, 8, 13].contains(&round) {
            model.stream.split();
        }
        let extra = &[&with_changes[..], &["--max-records", "25"]].concat();
        if [5, 9, 14].contains(&round) {
            // Killed while committing or while reading; the next sync finishes the run.
            let event = if round == 9 { "page" } else { "committing" };
            let mut args = sync_args(&moto, &table, extra);
            args.retain(|a| a != "--json" && a != "--endpoint-url" && *a != moto.endpoint());
            let env = [
                ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint()),
                ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", fault.clone()),
            ];
            let mut seen = 0;
            let killed = run_until_killed_with(args, &env, move |e| {
                seen += usize::from(e["event"] == event);
                seen == 2
            })
            .await;
            assert!(killed.killed, "round {round}: {}", killed.stderr);
            // What it committed before it was killed is the model up to its positions.
            let (version, shards) = latest_commit(&table);
            assert_version_holds(&table, version, &model.up_to(&shards));
            continue;
        }
        let done = ok(sync_split(&moto, &fault, &table, extra).await);
        let (version, shards) = latest_commit(&table);
        assert_eq!(done["version"], version, "{done}");
        // Read back on a few rounds (each read of 10,000 rows by three readers takes seconds),
        // the one after each kill among them: the model up to the committed positions, which
        // is a Scan once a sync has read everything.
        if [0, 6, 10, 15, 19].contains(&round) {
            let expected = model.up_to(&shards);
            assert_same_items(&expected, &scan_all(&client, "orders").await);
            assert_version_holds(&table, version, &expected);
        }
        if !done["changes_version"].is_null() {
            last = done;
        }
    }
    let (rows, _) = change_rows(&changes, &last).await;
    let mut got: Vec<String> = (rows.iter())
        .map(|r| match &r["_seq"] {
            AV::S(seq) => seq.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, model.stream.sequence_numbers(), "every record once");
}
