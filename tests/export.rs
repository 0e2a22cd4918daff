//! `ddbsnap convert-export` on exports that test code writes into s3s-fs in the layout AWS
//! documents for Export to S3 (manifest-summary.json, manifest-files.json with MD5 checksums,
//! gzip DynamoDB JSON data files): the snapshot equals the exported items value by value, and a
//! damaged export fails clearly with no manifest.

mod common;

use std::io::Write;
use std::process::Output;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use base64::Engine;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::convert::json::value_to_json;
use ddbsnap::sink::{Destination, S3Options, Target};
use md5::{Digest, Md5};
use object_store::ObjectStoreExt;
use object_store::path::Path;

const EXPORT_ID: &str = "01700000000000-abcdef12";

/// Items with every DynamoDB type, nested, sparse, and numbers at the edges.
fn export_items(count: u64) -> Vec<Item> {
    (0..count)
        .map(|i| {
            let mut it = item(vec![
                ("pk", s(&format!("c{}", i % 17))),
                ("sk", n(&i.to_string())),
                // Canonical numbers, as DynamoDB stores (and exports) them.
                ("price", n(&format!("{}.{:02}5", i * 31, i % 100))),
                ("raw", AV::B(Blob::new(random_bytes(i, 9)))),
                ("ok", AV::Bool(i % 3 == 0)),
                ("tags", AV::Ss(vec!["a".into(), format!("t{i}")])),
                ("scores", AV::Ns(vec!["1".into(), format!("{i}.5")])),
                (
                    "blobs",
                    AV::Bs(vec![
                        Blob::new(vec![0u8, 1, 2]),
                        Blob::new(random_bytes(i, 3)),
                    ]),
                ),
                (
                    "profile",
                    AV::M(item(vec![
                        ("name", s(&format!("näme {i}"))),
                        ("history", AV::L(vec![n("1"), s("two"), AV::Null(true)])),
                    ])),
                ),
            ]);
            if i % 10 == 0 {
                it.insert("big".into(), n("-99999999999999999999999999999999999999"));
                it.insert("tiny".into(), n("1E-130"));
            }
            it
        })
        .collect()
}

fn line(item: &Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let fields: Vec<String> = names
        .iter()
        .map(|k| {
            format!(
                "{}:{}",
                serde_json::to_string(k).unwrap(),
                value_to_json(&item[*k]).unwrap()
            )
        })
        .collect();
    format!("{{\"Item\":{{{}}}}}\n", fields.join(","))
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn md5_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// How to damage the export.
#[derive(Clone, Copy, PartialEq)]
enum Damage {
    None,
    WrongChecksum,
    TruncatedGzip,
}

/// Write an export of `items` in `files` data files (one of them empty) under
/// `raw/AWSDynamoDB/<id>/` of bucket `raw`.
async fn write_export(s3: &S3Server, items: &[Item], files: usize, damage: Damage) -> Target {
    let lines: Vec<String> = items.iter().map(line).collect();
    write_export_lines(
        s3,
        EXPORT_ID,
        &lines,
        files,
        damage,
        serde_json::json!({"exportType": "FULL_EXPORT"}),
    )
    .await
}

/// Write data-file `lines` in `files` data files (the last one empty), with `summary` fields
/// added to the manifest summary.
async fn write_export_lines(
    s3: &S3Server,
    id: &str,
    items: &[String],
    files: usize,
    damage: Damage,
    extra: serde_json::Value,
) -> Target {
    let aws = aws_context(None);
    let root = Target::open(
        &Destination::parse(&format!("s3://raw/raw/AWSDynamoDB/{id}")).unwrap(),
        Some(&aws.sdk),
        &S3Options {
            endpoint_url: Some(s3.endpoint()),
            region: None,
        },
    )
    .await
    .unwrap();
    let store = root.store();
    let base = format!("raw/AWSDynamoDB/{id}");
    let mut manifest = String::new();
    let per_file = items.len().div_ceil(files - 1);
    for f in 0..files {
        // The last file is empty, as real exports often have.
        let chunk: &[String] = if f + 1 == files {
            &[]
        } else {
            let start = (f * per_file).min(items.len());
            &items[start..((f + 1) * per_file).min(items.len())]
        };
        let text: String = chunk.concat();
        let mut body = gzip(&text);
        let mut md5 = md5_base64(&body);
        if f == 0 {
            match damage {
                Damage::None => {}
                Damage::WrongChecksum => md5 = md5_base64(b"something else"),
                Damage::TruncatedGzip => {
                    body.truncate(body.len() / 2);
                    md5 = md5_base64(&body);
                }
            }
        }
        let key = format!("{base}/data/file{f:02}abc.json.gz");
        store
            .put(&Path::from(key.as_str()), body.into())
            .await
            .unwrap();
        manifest.push_str(&format!(
            "{{\"itemCount\":{},\"md5Checksum\":\"{md5}\",\"etag\":\"x-{f}\",\"dataFileS3Key\":\"{key}\"}}\n",
            chunk.len()
        ));
    }
    store
        .put(
            &Path::from(format!("{base}/manifest-files.json")),
            manifest.into_bytes().into(),
        )
        .await
        .unwrap();
    let mut summary = serde_json::json!({
        "version": "2020-06-30",
        "exportArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/orders/export/{id}"),
        "startTime": "2026-11-20T00:00:01.000Z",
        "endTime": "2026-11-20T00:05:00.000Z",
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        "tableId": "0a1b2c3d",
        "exportTime": "2026-11-20T00:00:00.000Z",
        "s3Bucket": "raw",
        "s3Prefix": "raw",
        "s3SseAlgorithm": "AES256",
        "manifestFilesS3Key": format!("{base}/manifest-files.json"),
        "billedSizeBytes": 12345,
        "itemCount": items.len(),
        "outputFormat": "DYNAMODB_JSON",
    });
    for (k, v) in extra.as_object().unwrap() {
        summary[k] = v.clone();
    }
    store
        .put(
            &Path::from(format!("{base}/manifest-summary.json")),
            serde_json::to_vec(&summary).unwrap().into(),
        )
        .await
        .unwrap();
    root
}

async fn convert(s3: &S3Server, to: &str, extra: &[&str]) -> Output {
    convert_id(s3, EXPORT_ID, to, extra).await
}

async fn convert_id(s3: &S3Server, id: &str, to: &str, extra: &[&str]) -> Output {
    let export = format!("s3://raw/raw/AWSDynamoDB/{id}");
    let mut args: Vec<String> = ["convert-export", &export, "--to", to]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    run(s3, args).await
}

/// The binary with the test credentials and the S3 endpoint.
async fn run(s3: &S3Server, mut args: Vec<String>) -> Output {
    args.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
    run_ddbsnap_to_end(args).await
}

async fn s3_target(s3: &S3Server, url: &str) -> Target {
    let aws = aws_context(None);
    Target::open(
        &Destination::parse(url).unwrap(),
        Some(&aws.sdk),
        &S3Options {
            endpoint_url: Some(s3.endpoint()),
            region: None,
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_export_converts_value_by_value() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items = export_items(5000);
    write_export(&s3, &items, 5, Damage::None).await;
    let out = convert(&s3, "s3://snaps/orders/full", &["--key", "pk,sk"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("converting an export of orders: 5 data files"),
        "{err}"
    );
    let target = s3_target(&s3, "s3://snaps/orders/full").await;
    assert_same_items(&items, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.mode, "export");
    assert_eq!(manifest.table.name, "orders");
    assert_eq!(manifest.consumed_rcu, 0.0);
    let export = manifest.export.unwrap();
    assert_eq!(
        export.export_time.as_deref(),
        Some("2026-11-20T00:00:00.000Z")
    );
    assert!(export.export_arn.unwrap().ends_with(EXPORT_ID));
    let columns: Vec<&String> = manifest.schema.columns.keys().collect();
    assert_eq!(&columns[..2], ["pk", "sk"], "the given keys come first");
    assert_eq!(
        manifest
            .table
            .key_schema
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["pk", "sk"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_export_fails_clearly_with_no_manifest() {
    for (damage, needle) in [
        (Damage::WrongChecksum, "does not match the manifest's"),
        (Damage::TruncatedGzip, "cannot be decompressed"),
    ] {
        let s3 = S3Server::start(&["raw", "snaps"]);
        write_export(&s3, &export_items(3000), 3, damage).await;
        let out = convert(&s3, "s3://snaps/orders/bad", &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(
            err.contains("data/file00abc.json.gz"),
            "names the file: {err}"
        );
        let left = s3.root.path().join("snaps/orders/bad/_manifest.json");
        assert!(!left.exists(), "no manifest after a damaged export");
    }
    // Not an export at all.
    let s3 = S3Server::start(&["raw", "snaps"]);
    let out = convert(&s3, "s3://snaps/orders/none", &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("no manifest-summary.json here"), "{err}");
}

/// The JSON of an attribute map.
fn json_map(item: &Item) -> String {
    line(item)
        .trim_end()
        .strip_prefix("{\"Item\":")
        .unwrap()
        .strip_suffix('}')
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_export_becomes_a_change_log() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let images = export_items(300);
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for (i, new) in images.iter().enumerate() {
        let keys = item(vec![("pk", new["pk"].clone()), ("sk", new["sk"].clone())]);
        let micros = 1_763_000_000_000_000u64 + i as u64;
        // Both forms of the timestamp occur in exports.
        let stamp = if i % 2 == 0 {
            format!("{{\"N\":\"{micros}\"}}")
        } else {
            micros.to_string()
        };
        let mut old = new.clone();
        old.insert("price".into(), n("1.5"));
        let (record, op, row_image, old_image) = match i % 3 {
            0 => (
                format!(
                    "{{\"Metadata\":{{\"WriteTimestampMicros\":{stamp}}},\"Keys\":{},\"NewImage\":{}}}\n",
                    json_map(&keys),
                    json_map(new)
                ),
                "insert",
                new.clone(),
                None,
            ),
            1 => (
                format!(
                    "{{\"Metadata\":{{\"WriteTimestampMicros\":{stamp}}},\"Keys\":{},\"NewImage\":{},\"OldImage\":{}}}\n",
                    json_map(&keys),
                    json_map(new),
                    json_map(&old)
                ),
                "update",
                new.clone(),
                Some(old.clone()),
            ),
            _ => (
                format!(
                    "{{\"Metadata\":{{\"WriteTimestampMicros\":{stamp}}},\"Keys\":{},\"OldImage\":{}}}\n",
                    json_map(&keys),
                    json_map(&old)
                ),
                "delete",
                keys.clone(),
                Some(old.clone()),
            ),
        };
        lines.push(record);
        let mut row = row_image;
        row.insert("_op".into(), s(op));
        row.insert("_write_time".into(), n(&micros.to_string()));
        if let Some(old) = old_image {
            row.insert("_old".into(), AV::M(old));
        }
        expected.push(row);
    }
    write_export_lines(
        &s3,
        EXPORT_ID,
        &lines,
        4,
        Damage::None,
        serde_json::json!({
            "exportType": "INCREMENTAL_EXPORT",
            "exportViewType": "NEW_AND_OLD_IMAGES",
            "exportFromTime": "2026-11-23T00:00:00.000Z",
            "exportToTime": "2026-11-24T00:00:00.000Z",
            "itemCount": lines.len(),
        }),
    )
    .await;
    let out = convert(&s3, "s3://snaps/orders/changes", &["--key", "pk,sk"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = s3_target(&s3, "s3://snaps/orders/changes").await;
    // Each key changes once here, so key_of identifies a row.
    assert_same_items(&expected, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    let columns: Vec<&String> = manifest.schema.columns.keys().collect();
    assert_eq!(&columns[..4], ["pk", "sk", "_op", "_write_time"]);
    assert_eq!(
        manifest.export.unwrap().export_type.as_deref(),
        Some("INCREMENTAL_EXPORT")
    );
}

/// An incremental export record.
fn change(keys: &Item, micros: u64, new: Option<&Item>, old: Option<&Item>) -> String {
    let mut record = format!(
        "{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{micros}\"}}}},\"Keys\":{}",
        json_map(keys)
    );
    if let Some(new) = new {
        record.push_str(&format!(",\"NewImage\":{}", json_map(new)));
    }
    if let Some(old) = old {
        record.push_str(&format!(",\"OldImage\":{}", json_map(old)));
    }
    record.push_str("}\n");
    record
}

/// A table's state, computed from a base by the test, and the incremental-export records of
/// the changes that lead to it (one microsecond apart).
struct Changes {
    state: std::collections::HashMap<String, Item>,
    records: Vec<String>,
    time: u64,
}

impl Changes {
    fn from(base: &[Item]) -> Self {
        Changes {
            state: base.iter().map(|i| (key_of(i), i.clone())).collect(),
            records: Vec::new(),
            time: 1_763_900_000_000_000,
        }
    }

    fn key(it: &Item) -> Item {
        item(vec![("pk", it["pk"].clone()), ("sk", it["sk"].clone())])
    }

    fn update(&mut self, old: &Item, new: Item) {
        self.time += 1;
        let record = change(&Self::key(old), self.time, Some(&new), Some(old));
        self.records.push(record);
        self.state.insert(key_of(&new), new);
    }

    fn delete(&mut self, old: &Item) {
        self.time += 1;
        let record = change(&Self::key(old), self.time, None, Some(old));
        self.records.push(record);
        self.state.remove(&key_of(old));
    }

    fn insert(&mut self, new: Item) {
        self.time += 1;
        let record = change(&Self::key(&new), self.time, Some(&new), None);
        self.records.push(record);
        self.state.insert(key_of(&new), new);
    }
}

/// Write `items` as export [`EXPORT_ID`] and convert it to a snapshot at `to`.
async fn base_snapshot(s3: &S3Server, items: &[Item], to: &str) {
    write_export(s3, items, 3, Damage::None).await;
    let out = convert(s3, to, &["--key", "pk,sk"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

/// Write `records` as the NEW_AND_OLD_IMAGES incremental export `id` and convert it to a
/// change log at `to`.
async fn change_log(s3: &S3Server, id: &str, records: &[String], to: &str) {
    let summary = serde_json::json!({
        "exportType": "INCREMENTAL_EXPORT",
        "exportViewType": "NEW_AND_OLD_IMAGES",
        "itemCount": records.len(),
    });
    write_export_lines(s3, id, records, 3, Damage::None, summary).await;
    let out = convert_id(s3, id, to, &["--key", "pk,sk"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_export_then_changes_then_apply_gives_the_new_table_state() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let base = export_items(400);
    base_snapshot(&s3, &base, "s3://snaps/orders/base").await;

    // The table's new state, computed here, and the changes that lead to it.
    let mut changes = Changes::from(&base);
    for old in &base[..50] {
        let mut new = old.clone();
        new.insert("price".into(), n("7.25"));
        new.insert("note".into(), s("updated"));
        changes.update(old, new);
    }
    for old in &base[50..80] {
        changes.delete(old);
    }
    for j in 0..20u64 {
        changes.insert(item(vec![
            ("pk", s("new")),
            ("sk", n(&(1000 + j).to_string())),
            ("price", n("0.5")),
        ]));
    }
    // One key changed twice; the later write comes first in the file and must still win.
    let twice = &base[100];
    let mut first = twice.clone();
    first.insert("note".into(), s("first"));
    let mut second = twice.clone();
    second.insert("note".into(), s("second"));
    let t = changes.time;
    let key = Changes::key(twice);
    changes
        .records
        .push(change(&key, t + 10, Some(&second), Some(&first)));
    changes
        .records
        .push(change(&key, t + 5, Some(&first), Some(twice)));
    changes.state.insert(key_of(&second), second);

    let id = "01700000000999-changes1";
    change_log(&s3, id, &changes.records, "s3://snaps/orders/changes").await;

    let args = [
        "apply",
        "s3://snaps/orders/changes",
        "--to-snapshot",
        "s3://snaps/orders/base",
        "--out",
        "s3://snaps/orders/next",
    ];
    let out = run(&s3, args.iter().map(|s| s.to_string()).collect()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next = s3_target(&s3, "s3://snaps/orders/next").await;
    let want: Vec<Item> = changes.state.into_values().collect();
    assert_same_items(&want, &read_snapshot(&next).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&next).await.unwrap();
    assert_eq!(manifest.mode, "apply");
    assert_eq!(manifest.items_written, 400 - 30 + 20);

    // Applying something that is not a change log is refused.
    let args = [
        "apply",
        "s3://snaps/orders/base",
        "--to-snapshot",
        "s3://snaps/orders/base",
        "--out",
        "s3://snaps/orders/wrong",
    ];
    let out = run(&s3, args.iter().map(|s| s.to_string()).collect()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a change log"));
}

/// An attribute value as the Ion text DynamoDB writes in ION exports.
fn ion(v: &AV) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let number = |n: &str| {
        let n = n.replace(['E', 'e'], "d");
        if n.contains(['.', 'd']) {
            n
        } else {
            format!("{n}.")
        }
    };
    let list = |items: Vec<String>| format!("[{}]", items.join(","));
    match v {
        AV::S(s) => serde_json::to_string(s).unwrap(),
        AV::N(n) => number(n),
        AV::B(b) => format!("{{{{{}}}}}", b64(b.as_ref())),
        AV::Bool(b) => b.to_string(),
        AV::Null(_) => "null".into(),
        AV::Ss(ss) => format!(
            "$dynamodb_SS::{}",
            list(
                ss.iter()
                    .map(|s| serde_json::to_string(s).unwrap())
                    .collect()
            )
        ),
        AV::Ns(ns) => format!(
            "$dynamodb_NS::{}",
            list(ns.iter().map(|n| number(n)).collect())
        ),
        AV::Bs(bs) => format!(
            "$dynamodb_BS::{}",
            list(
                bs.iter()
                    .map(|b| format!("{{{{{}}}}}", b64(b.as_ref())))
                    .collect()
            )
        ),
        AV::L(l) => list(l.iter().map(ion).collect()),
        AV::M(m) => ion_struct(m),
        other => panic!("{other:?}"),
    }
}

fn ion_struct(m: &Item) -> String {
    let fields: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), ion(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ion_export_converts_value_by_value() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items = export_items(2000);
    let lines: Vec<String> = items
        .iter()
        .map(|it| format!("$ion_1_0 {{Item:{}}}\n", ion_struct(it)))
        .collect();
    let id = "01700000000000-ion00001";
    let summary = serde_json::json!({"exportType": "FULL_EXPORT", "outputFormat": "ION"});
    write_export_lines(&s3, id, &lines, 3, Damage::None, summary).await;
    let out = convert_id(&s3, id, "s3://snaps/orders/ion", &["--key", "pk,sk"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = s3_target(&s3, "s3://snaps/orders/ion").await;
    assert_same_items(&items, &read_snapshot(&target).await);
}

/// Items big enough that 1 MiB data files close every few thousand items.
fn padded_items(count: u64) -> Vec<Item> {
    let mut items = export_items(count);
    for (i, it) in items.iter_mut().enumerate() {
        it.insert("body".into(), s(&random_text(i as u64, 240)));
    }
    items
}

/// Kill `args` (with `--progress json`, 1 MiB files) when `kill_when` says so, check the
/// unfinished snapshot is refused without `--resume`, resume it, and return the target.
async fn kill_then_resume(
    s3: &S3Server,
    mut args: Vec<String>,
    to: &str,
    what: &str,
    kill_when: impl FnMut(&serde_json::Value) -> bool + Send + 'static,
) -> Target {
    args.extend(["--file-size", "1", "--s3-endpoint-url", &s3.endpoint()].map(String::from));
    let first = run_until_killed(args.clone(), kill_when).await;
    assert!(
        first.killed,
        "{what}: the run ended (exit {:?}) before the kill point; stderr:\n{}",
        first.code, first.stderr
    );
    let target = s3_target(s3, to).await;
    let left = names_under(&target).await;
    assert!(left.contains("_checkpoint.json"), "{what}: {left:?}");
    if !left.contains("_manifest.json") {
        let refused = run_until_killed(args.clone(), |_| false).await;
        assert_eq!(refused.code, Some(8), "{what}: {}", refused.stderr);
    }
    args.push("--resume".into());
    let resumed = run_until_killed(args, |_| false).await;
    assert_eq!(resumed.code, Some(0), "{what}: {}", resumed.stderr);
    if !left.contains("_manifest.json") {
        let line = resumed
            .stderr
            .lines()
            .find(|l| l.starts_with("ddbsnap: resuming:"))
            .unwrap_or_else(|| panic!("{what}: no resume line in\n{}", resumed.stderr));
        assert!(
            !line.contains(" 0 files"),
            "{what}: nothing was kept: {line}"
        );
    }
    // Nothing but the manifest and the files it lists.
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    let mut expected: std::collections::HashSet<String> =
        manifest.files.iter().map(|f| f.path.clone()).collect();
    expected.insert("_manifest.json".into());
    assert_eq!(names_under(&target).await, expected, "{what}: stray files");
    target
}

/// When to kill a run, by its progress events.
type KillWhen = Box<dyn FnMut(&serde_json::Value) -> bool + Send>;

/// Kill points by progress event: a file just closed (its checkpoint maybe not saved), a
/// checkpoint just saved, the manifest being written.
fn kill_points() -> Vec<(&'static str, KillWhen)> {
    let count = |event: &'static str, nth: usize| {
        let mut seen = 0;
        Box::new(move |e: &serde_json::Value| {
            seen += usize::from(e["event"] == event);
            e["event"] == event && seen == nth
        }) as KillWhen
    };
    vec![
        ("between-files", count("file_written", 3)),
        ("after-checkpoint", count("checkpointed", 5)),
        ("during-manifest", count("committing", 1)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_conversion_resumes_with_every_item_once() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items = padded_items(40_000);
    write_export(&s3, &items, 4, Damage::None).await;
    let convert = |to: &str| -> Vec<String> {
        [
            "convert-export",
            &format!("s3://raw/raw/AWSDynamoDB/{EXPORT_ID}"),
            "--to",
            to,
            "--key",
            "pk,sk",
        ]
        .map(String::from)
        .to_vec()
    };
    for (point, kill_when) in kill_points() {
        let to = format!("s3://snaps/orders/{point}");
        let target = kill_then_resume(&s3, convert(&to), &to, point, kill_when).await;
        assert_same_items(&items, &read_snapshot(&target).await);
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        assert_eq!(manifest.mode, "export");
        assert_eq!(manifest.items_written, items.len() as u64);
    }

    // Ctrl-C: the readers stop, the open file is closed and checkpointed, exit 130 with the
    // hint; the resume then commits every item once.
    let to = "s3://snaps/orders/ctrl-c";
    let args = [
        convert(to),
        ["--file-size", "1", "--s3-endpoint-url", &s3.endpoint()]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    let stopped = run_until_signalled(args.clone(), "INT", |e| e["event"] == "checkpointed").await;
    assert_eq!(stopped.code, Some(130), "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .contains("run the same command with --resume"),
        "{}",
        stopped.stderr
    );
    let resumed = run_ddbsnap_to_end([args, vec!["--resume".into()]].concat()).await;
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_same_items(&items, &read_snapshot(&s3_target(&s3, to).await).await);

    // A resume must read the same export.
    let to = "s3://snaps/orders/other";
    let args = |export: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["convert-export", export, "--to", to, "--file-size", "1"]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
        a
    };
    let export = format!("s3://raw/raw/AWSDynamoDB/{EXPORT_ID}");
    let first = run_until_killed(args(&export, &[]), |e| e["event"] == "checkpointed").await;
    assert!(first.killed, "{}", first.stderr);
    let lines: Vec<String> = items[..10].iter().map(line).collect();
    let full = serde_json::json!({"exportType": "FULL_EXPORT"});
    write_export_lines(
        &s3,
        "01700000000001-otherone",
        &lines,
        2,
        Damage::None,
        full,
    )
    .await;
    let other = "s3://raw/raw/AWSDynamoDB/01700000000001-otherone";
    let out = run_ddbsnap_to_end(args(other, &["--resume"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("it was made from s3://raw/raw/AWSDynamoDB/"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apply_resumes_to_the_same_table_state() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let base = padded_items(24_000);
    base_snapshot(&s3, &base, "s3://snaps/orders/base").await;

    // 2,000 updates, 1,000 deletes and 8,000 inserts: the new images fill files of their own.
    let mut changes = Changes::from(&base);
    for old in base.iter().step_by(12) {
        let mut new = old.clone();
        new.insert("note".into(), s("updated"));
        changes.update(old, new);
    }
    for old in base.iter().skip(5).step_by(24) {
        changes.delete(old);
    }
    for mut new in padded_items(8_000) {
        new.insert("pk".into(), s("new"));
        changes.insert(new);
    }
    let id = "01700000000999-changes2";
    change_log(&s3, id, &changes.records, "s3://snaps/orders/changes").await;

    let want: Vec<Item> = changes.state.into_values().collect();
    let kept_base = 24_000 - 1_000 - 2_000;
    let points: Vec<(&str, KillWhen)> = vec![
        (
            "in-base",
            Box::new(|e: &serde_json::Value| e["event"] == "checkpointed" && e["files"] == 2),
        ),
        (
            "in-new-images",
            Box::new(move |e: &serde_json::Value| {
                e["event"] == "checkpointed" && e["items"].as_u64().unwrap_or(0) > kept_base
            }),
        ),
    ];
    for (point, kill_when) in points {
        let to = format!("s3://snaps/orders/next-{point}");
        let args: Vec<String> = [
            "apply",
            "s3://snaps/orders/changes",
            "--to-snapshot",
            "s3://snaps/orders/base",
            "--out",
            &to,
        ]
        .map(String::from)
        .to_vec();
        let target = kill_then_resume(&s3, args, &to, point, kill_when).await;
        assert_same_items(&want, &read_snapshot(&target).await);
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        assert_eq!(manifest.mode, "apply");
        assert_eq!(manifest.runs, 2, "{point}");
    }
}

/// `snapshot --mode export --resume` continues converting the export its checkpoint names,
/// without asking DynamoDB for another export; with nothing converted yet it starts afresh
/// (the request's ClientToken finds the same export), so DynamoDB's own checks come first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_in_export_mode_resumes_the_conversion_it_started() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let moto = Moto::start();
    create_table(&aws_context(Some(moto.endpoint())).dynamodb, "orders", None).await;
    let items = padded_items(12_000);
    write_export(&s3, &items, 3, Damage::None).await;
    let to = "s3://snaps/orders/export-mode";
    let export = format!("s3://raw/raw/AWSDynamoDB/{EXPORT_ID}");
    let mut convert: Vec<String> = ["convert-export", &export, "--to", to, "--file-size", "1"]
        .map(String::from)
        .to_vec();
    convert.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
    let first = run_until_killed(convert, |e| e["event"] == "checkpointed").await;
    assert!(first.killed, "{}", first.stderr);

    let snapshot = |to: &str| -> Vec<String> {
        let mut a: Vec<String> = ["snapshot", "orders", "--to", to, "--mode", "export"]
            .map(String::from)
            .to_vec();
        a.extend(
            [
                "--export-to",
                "s3://raw/raw",
                "--resume",
                "--file-size",
                "1",
            ]
            .map(String::from),
        );
        a.extend(["--endpoint-url".to_owned(), moto.endpoint()]);
        a.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
        a
    };
    let resumed = run_until_killed(snapshot(to), |_| false).await;
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert!(
        !resumed.stderr.contains("\"exporting\""),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("ddbsnap: resuming: "),
        "{}",
        resumed.stderr
    );
    let target = s3_target(&s3, to).await;
    assert_same_items(&items, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!((manifest.mode.as_str(), manifest.runs), ("export", 2));

    // Again: already committed.
    let again = run_ddbsnap_to_end(snapshot(to)).await;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already committed"));

    // Nothing at the destination yet: a fresh start, so point-in-time recovery is checked.
    let fresh = run_ddbsnap_to_end(snapshot("s3://snaps/orders/not-started")).await;
    let err = String::from_utf8_lossy(&fresh.stderr);
    assert_eq!(fresh.status.code(), Some(2), "{err}");
    assert!(err.contains("point-in-time recovery is off"), "{err}");
}
