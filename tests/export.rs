//! `ddbsnap convert-export` on exports that test code writes into s3s-fs in the layout AWS
//! documents for Export to S3 (manifest-summary.json, manifest-files.json with MD5 checksums,
//! gzip DynamoDB JSON data files): the snapshot equals the exported items value by value, and a
//! damaged export fails clearly with no manifest.

mod common;

use std::io::Write;
use std::process::Output;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ScalarAttributeType};
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

/// The bucket the tests' exports are in.
const BUCKET: &str = "raw";

/// Where in bucket [`BUCKET`] an export is: its prefix ("" when the export was asked for
/// without one) and whether incremental data files go to the prefix's shared
/// `AWSDynamoDB/data/` folder, as DynamoDB writes them, or (`shared_data: false`, the layout
/// of an earlier fixture, kept as one extra case) into the export's own folder.
#[derive(Clone, Copy, Debug)]
struct Layout {
    prefix: &'static str,
    shared_data: bool,
}

/// The layout most tests use: prefix `raw`.
const RAW: Layout = Layout {
    prefix: "raw",
    shared_data: true,
};

impl Layout {
    /// The key of the prefix's `AWSDynamoDB` folder.
    fn exports(&self) -> String {
        if self.prefix.is_empty() {
            "AWSDynamoDB".into()
        } else {
            format!("{}/AWSDynamoDB", self.prefix)
        }
    }

    /// The key of export `id`'s own folder.
    fn folder(&self, id: &str) -> String {
        format!("{}/{id}", self.exports())
    }

    /// The export's folder as `convert-export` takes it.
    fn url(&self, id: &str) -> String {
        format!("s3://{BUCKET}/{}", self.folder(id))
    }
}

/// A data file name in DynamoDB's style (26 lowercase letters and digits), unique per export.
fn data_file_name(id: &str, f: usize, ion: bool) -> String {
    let digest = Md5::digest(format!("{id}/{f}").as_bytes());
    let name: String = digest
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .map(|d| char::from_digit(u32::from(d) + 10, 36).unwrap())
        .take(26)
        .collect();
    format!("{name}.{}.gz", if ion { "ion" } else { "json" })
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write an export of `items` in `files` data files (one of them empty) as export
/// [`EXPORT_ID`] under prefix `raw`; returns the data files' keys.
async fn write_export(s3: &S3Server, items: &[Item], files: usize, damage: Damage) -> Vec<String> {
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

/// [`write_export_at`] under prefix `raw`.
async fn write_export_lines(
    s3: &S3Server,
    id: &str,
    lines: &[String],
    files: usize,
    damage: Damage,
    extra: serde_json::Value,
) -> Vec<String> {
    write_export_at(s3, RAW, id, lines, files, damage, extra).await
}

/// Write export `id` as DynamoDB does (its Export to S3 output format documentation): in the
/// export's folder `_started`, `manifest-summary.json`, `manifest-files.json` and their
/// `.checksum` and `.md5` files; the data-file `lines` gzipped into `files` data files (the last
/// one empty, as exports of empty partitions have), in the export's `data/` folder for a full
/// export and in the prefix's shared `AWSDynamoDB/data/` folder for an incremental one, each
/// listed with its key from the bucket root, item count and MD5. `extra` fields are added to
/// the summary (`exportType`, `outputFormat`, ...). Returns the data files' keys.
#[allow(clippy::too_many_arguments)]
async fn write_export_at(
    s3: &S3Server,
    layout: Layout,
    id: &str,
    lines: &[String],
    files: usize,
    damage: Damage,
    extra: serde_json::Value,
) -> Vec<String> {
    let bucket = s3_target(s3, &format!("s3://{BUCKET}")).await;
    let store = bucket.store();
    let put = |key: String, body: Vec<u8>| async move {
        store.put(&Path::from(key), body.into()).await.unwrap();
    };
    let incremental = extra["exportType"] == "INCREMENTAL_EXPORT";
    let ion = extra["outputFormat"] == "ION";
    let folder = layout.folder(id);
    let data = if incremental && layout.shared_data {
        format!("{}/data", layout.exports())
    } else {
        format!("{folder}/data")
    };
    put(format!("{folder}/_started"), Vec::new()).await;
    let mut manifest = String::new();
    let mut keys = Vec::new();
    let per_file = lines.len().div_ceil(files - 1);
    for f in 0..files {
        let chunk: &[String] = if f + 1 == files {
            &[]
        } else {
            let start = (f * per_file).min(lines.len());
            &lines[start..((f + 1) * per_file).min(lines.len())]
        };
        let mut body = gzip(&chunk.concat());
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
        let key = format!("{data}/{}", data_file_name(id, f, ion));
        manifest.push_str(&format!(
            "{{\"itemCount\":{},\"md5Checksum\":\"{md5}\",\"etag\":\"{}-1\",\"dataFileS3Key\":\"{key}\"}}\n",
            chunk.len(),
            md5_hex(&body),
        ));
        put(key.clone(), body).await;
        keys.push(key);
    }
    let mut summary = serde_json::json!({
        "version": if incremental { "2023-08-01" } else { "2020-06-30" },
        "exportArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/orders/export/{id}"),
        "startTime": "2026-11-20T00:00:01.000Z",
        "endTime": "2026-11-20T00:05:00.000Z",
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        "tableId": "0a1b2c3d-0000-4000-8000-123456789abc",
        "s3Bucket": BUCKET,
        "s3Prefix": if layout.prefix.is_empty() { serde_json::Value::Null } else { layout.prefix.into() },
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": null,
        "manifestFilesS3Key": format!("{folder}/manifest-files.json"),
        "billedSizeBytes": 12345,
        "itemCount": lines.len(),
        "outputFormat": "DYNAMODB_JSON",
    });
    if incremental {
        // The day after the full export's time, unless `extra` says otherwise.
        summary["exportFromTime"] = "2026-11-20T00:00:00.000Z".into();
        summary["exportToTime"] = "2026-11-21T00:00:00.000Z".into();
        if extra.get("exportViewType").is_none() {
            summary["outputView"] = "NEW_AND_OLD_IMAGES".into();
        }
    } else {
        summary["exportTime"] = "2026-11-20T00:00:00.000Z".into();
    }
    for (k, v) in extra.as_object().unwrap() {
        summary[k] = v.clone();
    }
    let summary = serde_json::to_vec(&summary).unwrap();
    for (name, body) in [
        ("manifest-files", manifest.into_bytes()),
        ("manifest-summary", summary),
    ] {
        put(
            format!("{folder}/{name}.checksum"),
            md5_hex(&body).into_bytes(),
        )
        .await;
        put(format!("{folder}/{name}.md5"), md5_hex(&body).into_bytes()).await;
        put(format!("{folder}/{name}.json"), body).await;
    }
    keys
}

/// Copy everything under `prefix` of bucket [`BUCKET`] into `dir`, one file per object at its
/// key below the prefix, as `aws s3 sync s3://raw/<prefix> <dir>` does (`prefix` "" copies the
/// whole bucket).
async fn sync_to_local(s3: &S3Server, prefix: &str, dir: &std::path::Path) {
    use futures::TryStreamExt;
    let bucket = s3_target(s3, &format!("s3://{BUCKET}")).await;
    let listed: Vec<object_store::ObjectMeta> = bucket
        .store()
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    assert!(!listed.is_empty(), "nothing under {prefix}");
    for meta in listed {
        let key = meta.location.as_ref();
        let rel = if prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&format!("{prefix}/")).unwrap()
        };
        let file = dir.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let body = bucket.store().get(&meta.location).await.unwrap();
        std::fs::write(file, body.bytes().await.unwrap()).unwrap();
    }
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

    // The same export as version 0 of a new Delta table, read by `deltalake` and polars.
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("orders");
    let to = table.to_str().unwrap();
    let out = convert(&s3, to, &["--key", "pk,sk", "--format", "delta"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = run_python("read_delta.py", &[table.as_os_str(), "0".as_ref()]);
    let version: serde_json::Value = serde_json::from_slice(&read).unwrap();
    let rows = version["rows"].as_array().unwrap();
    assert_eq!(rows.len(), items.len());
    let keys = |pk: &str, sk: &str| format!("{pk}/{sk}");
    let mut got: Vec<String> = rows
        .iter()
        .map(|r| keys(r["pk"].as_str().unwrap(), r["sk"].as_str().unwrap()))
        .collect();
    let mut want: Vec<String> = items
        .iter()
        .map(|i| match (&i["pk"], &i["sk"]) {
            (AV::S(pk), AV::N(sk)) => keys(pk, sk),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every item once");
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.mode, "export");
    assert_eq!(manifest.table.name, "orders");
    assert_eq!(manifest.totals.consumed_rcu, 0.0);
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

/// Conversion lanes (`--threads`) each write their own files from their data files; items
/// of the last file add an attribute and change another's type, which every lane's files must
/// take on (the commit re-encodes files written before), value by value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversion_threads_share_one_schema() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let mut items = export_items(12_000);
    for (i, it) in items.iter_mut().enumerate().skip(10_000) {
        it.insert(
            "late".into(),
            AV::M(item(vec![("wide", n(&format!("1{i:035}.5")))])),
        );
        it.insert("ok".into(), s("not a boolean any more"));
    }
    // Six data files of 2,000 items: lane 0 takes files 0, 2 and 4, lane 1 takes 1, 3 and 5.
    write_export(&s3, &items, 7, Damage::None).await;
    let to = "s3://snaps/orders/lanes";
    let out = convert(&s3, to, &["--key", "pk,sk", "--threads", "2", "--json"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["files"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["items"], 12_000, "{summary}");
    let target = s3_target(&s3, to).await;
    assert_same_items(&items, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert!(manifest.schema.columns.contains_key("late"));
}

/// Large items (300 KB each) travel to the conversion in batches of about 2 MiB, not of 1,000
/// items (300 MB), and come out exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_items_travel_in_small_batches() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items: Vec<Item> = (0..30u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("c{i}"))),
                ("sk", n(&i.to_string())),
                ("doc", AV::B(Blob::new(random_bytes(i, 300_000)))),
            ])
        })
        .collect();
    write_export(&s3, &items, 2, Damage::None).await;
    let to = "s3://snaps/orders/large";
    let out = convert(&s3, to, &["--key", "pk,sk", "--progress", "json"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let batches: Vec<u64> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "page")
        .map(|e| e["items"].as_u64().unwrap())
        .collect();
    assert_eq!(batches.iter().sum::<u64>(), 30, "{batches:?}");
    // 300 KB of binary is 300 KB in the arena: a batch ends at the 7th item (2.1 MB).
    assert!(batches.iter().all(|&b| b <= 7), "{batches:?}");
    assert_same_items(&items, &read_snapshot(&s3_target(&s3, to).await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_export_fails_clearly_with_no_manifest() {
    for (damage, needle) in [
        (Damage::WrongChecksum, "does not match the manifest's"),
        (Damage::TruncatedGzip, "cannot be decompressed"),
    ] {
        let s3 = S3Server::start(&["raw", "snaps"]);
        let keys = write_export(&s3, &export_items(3000), 3, damage).await;
        let out = convert(&s3, "s3://snaps/orders/bad", &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(err.contains(&keys[0]), "names the file: {err}");
        let left = s3.root.path().join("snaps/orders/bad/_manifest.json");
        assert!(!left.exists(), "no manifest after a damaged export");

        // The same from a local copy, whose files are read in place rather than streamed.
        let local = tempfile::tempdir().unwrap();
        sync_to_local(&s3, RAW.prefix, local.path()).await;
        let export = local.path().join("AWSDynamoDB").join(EXPORT_ID);
        let out = convert_local(&export, &local.path().join("out")).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(err.contains(&keys[0]), "names the file: {err}");
        assert!(!local.path().join("out/_manifest.json").exists());
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

/// Incremental records of every kind for `images` (insert, update, delete in turn, with both
/// forms of the timestamp), and the change-log rows they convert to.
fn sample_changes(images: &[Item], ion: bool) -> (Vec<String>, Vec<Item>) {
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for (i, new) in images.iter().enumerate() {
        let keys = item(vec![("pk", new["pk"].clone()), ("sk", new["sk"].clone())]);
        let micros = 1_763_000_000_000_000u64 + i as u64;
        let mut old = new.clone();
        old.insert("price".into(), n("1.5"));
        let (new_image, op, old_image) = match i % 3 {
            0 => (Some(new), "insert", None),
            1 => (Some(new), "update", Some(&old)),
            _ => (None, "delete", Some(&old)),
        };
        lines.push(if ion {
            change_record(Text::Ion, &keys, &micros.to_string(), new_image, old_image)
        } else {
            // Both forms of the timestamp occur in exports.
            let stamp = if i % 2 == 0 {
                format!("{{\"N\":\"{micros}\"}}")
            } else {
                micros.to_string()
            };
            change_record(Text::Json, &keys, &stamp, new_image, old_image)
        });
        let mut row = new_image.cloned().unwrap_or(keys);
        row.insert("_op".into(), s(op));
        row.insert("_write_time".into(), n(&micros.to_string()));
        if let Some(old) = old_image {
            row.insert("_old".into(), AV::M(old.clone()));
        }
        expected.push(row);
    }
    (lines, expected)
}

/// Convert with the test credentials (no S3 endpoint: local exports).
async fn convert_local(export: &std::path::Path, to: &std::path::Path) -> Output {
    let args = [
        "convert-export",
        export.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ];
    run_ddbsnap_to_end(
        args.iter()
            .map(|s| s.to_string())
            .chain(["--key".into(), "pk,sk".into()])
            .collect(),
    )
    .await
}

async fn local_target(dir: &std::path::Path) -> Target {
    Target::open(
        &Destination::Local(dir.to_owned()),
        None,
        &S3Options::default(),
    )
    .await
    .unwrap()
}

/// Incremental exports, DynamoDB JSON and ION, with a prefix, with none, with a prefix of
/// several levels and in the earlier fixture's layout, each next to another incremental export
/// in the same shared data folder: converted in the bucket, from a local copy of the prefix
/// and from a local copy of the whole bucket, each gives exactly its own change log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_export_becomes_a_change_log() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let local = tempfile::tempdir().unwrap();
    let images = export_items(300);
    let layouts = [
        (RAW, false),
        (
            Layout {
                prefix: "",
                shared_data: true,
            },
            false,
        ),
        (
            Layout {
                prefix: "lake/raw/orders",
                shared_data: true,
            },
            true,
        ),
        (
            Layout {
                prefix: "old",
                shared_data: false,
            },
            false,
        ),
    ];
    for (n, (layout, ion)) in layouts.into_iter().enumerate() {
        let what = format!("{layout:?}, ion: {ion}");
        // Another incremental export first: its files share the data folder.
        let (other, _) = sample_changes(&export_items(40), false);
        let summary = serde_json::json!({"exportType": "INCREMENTAL_EXPORT"});
        let other_id = format!("0176300000{n:04}-0ther0000");
        write_export_at(&s3, layout, &other_id, &other, 2, Damage::None, summary).await;

        let (lines, expected) = sample_changes(&images, ion);
        let id = format!("0176310000{n:04}-abcdef12");
        let format = if ion { "ION" } else { "DYNAMODB_JSON" };
        let mut summary =
            serde_json::json!({"exportType": "INCREMENTAL_EXPORT", "outputFormat": format});
        if !layout.shared_data {
            // The earlier fixture's name for the view type.
            summary["exportViewType"] = "NEW_AND_OLD_IMAGES".into();
        }
        let keys = write_export_at(&s3, layout, &id, &lines, 4, Damage::None, summary).await;
        if layout.shared_data {
            assert!(
                keys[0].starts_with(&format!("{}/data/", layout.exports())),
                "{what}"
            );
        }

        let check = |got: Vec<Item>, manifest: ddbsnap::manifest::Manifest, how: &str| {
            assert_same_items(&expected, &got);
            let columns: Vec<&String> = manifest.schema.columns.keys().collect();
            assert_eq!(
                &columns[..4],
                ["pk", "sk", "_op", "_write_time"],
                "{what} {how}"
            );
            let export = manifest.export.unwrap();
            assert_eq!(export.export_type.as_deref(), Some("INCREMENTAL_EXPORT"));
            assert_eq!(manifest.region, "us-east-1", "{what} {how}");
        };

        // In the bucket.
        let to = format!("s3://snaps/orders/changes-{n}");
        let out = run(
            &s3,
            [
                "convert-export",
                &layout.url(&id),
                "--to",
                &to,
                "--key",
                "pk,sk",
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = s3_target(&s3, &to).await;
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        check(read_snapshot(&target).await, manifest, "in the bucket");

        // A local copy of the prefix (`aws s3 sync s3://raw/<prefix> ./copy`).
        let copy = local.path().join(format!("prefix-{n}"));
        sync_to_local(&s3, layout.prefix, &copy).await;
        let out_dir = local.path().join(format!("changes-{n}"));
        let out = convert_local(&copy.join("AWSDynamoDB").join(&id), &out_dir).await;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = local_target(&out_dir).await;
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        check(
            read_snapshot(&target).await,
            manifest,
            "from a copy of the prefix",
        );
    }

    // A local copy of the whole bucket.
    let copy = local.path().join("bucket");
    sync_to_local(&s3, "", &copy).await;
    let (_, expected) = sample_changes(&images, true);
    let export = copy.join("lake/raw/orders/AWSDynamoDB/01763100000002-abcdef12");
    let out_dir = local.path().join("changes-bucket");
    let out = convert_local(&export, &out_dir).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_items(
        &expected,
        &read_snapshot(&local_target(&out_dir).await).await,
    );

    // A copy of only the export's folder lacks the shared data folder: a clear error naming
    // the file and what to copy, and no snapshot.
    let alone = local.path().join("alone");
    sync_to_local(&s3, "AWSDynamoDB/01763100000001-abcdef12", &alone).await;
    let out_dir = local.path().join("changes-alone");
    let out = convert_local(&alone, &out_dir).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("is listed in manifest-files.json but missing"),
        "{err}"
    );
    assert!(err.contains("copy the whole prefix"), "{err}");
    assert!(!out_dir.join("_manifest.json").exists());
}

/// An incremental export record.
fn change(keys: &Item, micros: u64, new: Option<&Item>, old: Option<&Item>) -> String {
    let stamp = format!("{{\"N\":\"{micros}\"}}");
    change_record(Text::Json, keys, &stamp, new, old)
}

/// The text of export lines: DynamoDB JSON, or the Ion text of ION exports.
#[derive(Clone, Copy)]
enum Text {
    Json,
    Ion,
}

impl Text {
    fn map(self, m: &Item) -> String {
        match self {
            Text::Json => json_map(m),
            Text::Ion => ion_struct(m),
        }
    }

    fn field(self, name: &str) -> String {
        match self {
            Text::Json => format!("\"{name}\""),
            Text::Ion => name.to_owned(),
        }
    }
}

/// An incremental export record whose `WriteTimestampMicros` is `stamp` (written as is).
fn change_record(
    text: Text,
    keys: &Item,
    stamp: &str,
    new: Option<&Item>,
    old: Option<&Item>,
) -> String {
    let f = |name: &str| text.field(name);
    let mut record = format!(
        "{}{{{}:{{{}:{stamp}}},{}:{}",
        if matches!(text, Text::Ion) {
            "$ion_1_0 "
        } else {
            ""
        },
        f("Metadata"),
        f("WriteTimestampMicros"),
        f("Keys"),
        text.map(keys)
    );
    for (name, image) in [("NewImage", new), ("OldImage", old)] {
        if let Some(image) = image {
            record.push_str(&format!(",{}:{}", f(name), text.map(image)));
        }
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

/// The summary fields of an incremental export of the changes from November `from` to
/// November `to` 2026 (00:00 UTC), NEW_AND_OLD_IMAGES.
fn incremental(from: u32, to: u32) -> serde_json::Value {
    serde_json::json!({
        "exportType": "INCREMENTAL_EXPORT",
        "exportFromTime": format!("2026-11-{from:02}T00:00:00.000Z"),
        "exportToTime": format!("2026-11-{to:02}T00:00:00.000Z"),
    })
}

/// Every file under `dir` with its bytes (nothing when it does not exist): what a refused run
/// must leave as it found it.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Write `items` as export [`EXPORT_ID`] and convert it to a snapshot at `to`.
async fn base_snapshot(s3: &S3Server, items: &[Item], to: &str) {
    write_export(s3, items, 3, Damage::None).await;
    let out = convert(s3, to, &["--key", "pk,sk"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

/// Write `records` as the NEW_AND_OLD_IMAGES incremental export `id` of the changes from
/// November `days.0` to `days.1` and convert it to a change log at `to`.
async fn change_log(s3: &S3Server, id: &str, records: &[String], days: (u32, u32), to: &str) {
    let summary = incremental(days.0, days.1);
    write_export_lines(s3, id, records, 3, Damage::None, summary).await;
    let out = convert_id(s3, id, to, &["--key", "pk,sk"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

/// Two consecutive incremental exports' changes from the table state `base` (items from
/// [`export_items`]): updates (one adding attributes), deletes, inserts, and one key changed
/// twice whose later write comes first in the file; then, in the next window, updates of
/// items the first one inserted and updated, deletes and re-inserts.
fn two_windows(base: &[Item]) -> (Changes, Changes) {
    // The table's new state, computed here, and the changes that lead to it.
    let mut changes = Changes::from(base);
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

    let after_first = changes.state.clone();
    // A second incremental export to the same prefix (same shared data folder), of the next
    // window: more updates (of items the first one inserted and updated), deletes, re-inserts.
    let state: Vec<Item> = after_first.values().cloned().collect();
    let mut later = Changes::from(&state);
    later.time = changes.time + 1_000_000;
    let mut sorted: Vec<&Item> = after_first.values().collect();
    sorted.sort_by_key(|i| key_of(i));
    for old in sorted.iter().step_by(7) {
        let mut new = (*old).clone();
        new.insert("note".into(), s("second window"));
        new.remove("tags");
        later.update(old, new);
    }
    for old in sorted.iter().skip(3).step_by(11) {
        later.delete(old);
    }
    for old in &base[50..55] {
        later.insert(old.clone());
    }
    (changes, later)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_export_then_changes_then_apply_gives_the_new_table_state() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let base = export_items(400);
    base_snapshot(&s3, &base, "s3://snaps/orders/base").await;

    let (changes, later) = two_windows(&base);
    // A file in the shared data folder that no manifest lists (another export's leftovers):
    // never read.
    let bucket = s3_target(&s3, "s3://raw").await;
    bucket
        .store()
        .put(
            &Path::from("raw/AWSDynamoDB/data/zzzzunlisted0000000000000.json.gz"),
            b"not gzip".to_vec().into(),
        )
        .await
        .unwrap();
    let id = "01700000000999-changes1";
    let changes1 = "s3://snaps/orders/changes";
    change_log(&s3, id, &changes.records, (20, 21), changes1).await;
    let after_first = changes.state.clone();

    let id2 = "01700000086399-changes2";
    let changes2 = "s3://snaps/orders/changes2";
    change_log(&s3, id2, &later.records, (21, 22), changes2).await;
    let listed: std::collections::HashSet<String> = names_under(&bucket).await;
    for id in [id, id2] {
        assert!(
            listed.contains(&data_file_name(id, 0, false)),
            "the data files of {id} are in the shared folder"
        );
    }

    // Apply both in order: the table's state, item by item.
    let apply = |changes: &'static str, base: &'static str, out: &'static str| {
        let s3 = &s3;
        async move {
            let args = ["apply", changes, "--to-snapshot", base, "--out", out];
            let done = run(s3, args.map(String::from).to_vec()).await;
            let err = String::from_utf8_lossy(&done.stderr);
            assert!(done.status.success(), "{err}");
            s3_target(s3, out).await
        }
    };
    let next = apply(
        "s3://snaps/orders/changes",
        "s3://snaps/orders/base",
        "s3://snaps/orders/next",
    )
    .await;
    let want: Vec<Item> = after_first.into_values().collect();
    assert_same_items(&want, &read_snapshot(&next).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&next).await.unwrap();
    assert_eq!(manifest.mode, "apply");
    assert_eq!(manifest.totals.items_written, 400 - 30 + 20);

    let next2 = apply(
        "s3://snaps/orders/changes2",
        "s3://snaps/orders/next",
        "s3://snaps/orders/next2",
    )
    .await;
    let want: Vec<Item> = later.state.into_values().collect();
    assert_same_items(&want, &read_snapshot(&next2).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&next2).await.unwrap();
    assert_eq!(
        manifest.coverage().unwrap().until().to_rfc3339(),
        "2026-11-22T00:00:00+00:00",
        "the new snapshot records the window it holds"
    );

    // Change sets apply only in order: the same one again is a no-op that says so, an older
    // one and one after a gap are refused (exit 11) naming both windows, writing nothing.
    let snaps = s3.root.path().join("snaps/orders");
    let try_apply = |changes: &'static str, base: &'static str, extra: &[&str]| {
        let mut args: Vec<String> = ["apply", changes, "--to-snapshot", base, "--out"]
            .map(String::from)
            .to_vec();
        args.push("s3://snaps/orders/tried".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&s3, args)
    };
    let before = tree(&snaps);
    let again = try_apply(changes1, "s3://snaps/orders/next", &["--json"]).await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["already_applied"], true, "{summary}");
    assert!(
        summary["window_note"]
            .as_str()
            .unwrap()
            .contains("already holds"),
        "{summary}"
    );
    let again = try_apply(changes1, "s3://snaps/orders/next", &[]).await;
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.contains("already holds the changes of this incremental export"),
        "{said}"
    );
    for (changes, base, needle) in [
        (
            changes1,
            "s3://snaps/orders/next2",
            "ends at or before that",
        ),
        (changes2, "s3://snaps/orders/base", "would be lost"),
    ] {
        let out = try_apply(changes, base, &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(11), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(
            err.contains("2026-11-2") && err.matches(" → ").count() >= 1,
            "both windows named: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{err}"
        );
        let out = try_apply(changes, base, &["--on-gap", "refresh"]).await;
        assert_eq!(out.status.code(), Some(11));
    }
    assert_eq!(
        tree(&snaps),
        before,
        "refused and repeated runs wrote nothing"
    );
    // --on-gap force applies the gapped one, and says so.
    let forced = try_apply(changes2, "s3://snaps/orders/base", &["--on-gap", "force"]).await;
    let err = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.status.success(), "{err}");
    assert!(
        err.contains("warning: applied across a gap (--on-gap force)"),
        "{err}"
    );

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

/// The Delta log entry `version` of the table at `dir`, one JSON value per action.
fn log_actions(dir: &std::path::Path, version: u64) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(format!("_delta_log/{version:020}.json"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_exports_merge_into_a_delta_table() {
    let s3 = S3Server::start(&["raw", "lake"]);
    let base = export_items(400);
    write_export(&s3, &base, 3, Damage::None).await;
    // No --key anywhere: the full export's table tells its keys (DescribeTable), and the
    // Delta table records them for every MERGE after.
    let delta = ["--format", "delta", "--json"];
    let table = s3.root.path().join("lake/orders");

    // An incremental export cannot start a table (it holds changes only): refused before
    // anything is written.
    let (changes, later) = two_windows(&base);
    let id = "01700000000999-changes1";
    write_export_lines(
        &s3,
        id,
        &changes.records,
        3,
        Damage::None,
        incremental(20, 21),
    )
    .await;
    let out = convert_id(&s3, id, "s3://lake/orders", &delta).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Delta table to merge"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!table.exists());

    // The full export initialises the table, keyed as DynamoDB describes the exported table
    // (the name and region of its tableArn); when that call fails, the error names it and
    // asks for --key.
    let db = Dynalite::start();
    let endpoint = db.endpoint();
    let described = [&delta[..], &["--endpoint-url", endpoint.as_str()]].concat();
    let out = convert(&s3, "s3://lake/orders", &described).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("DescribeTable orders in us-east-1") && err.contains("--key PK[,SK]"),
        "{err}"
    );
    assert!(!table.exists());
    create_table(&db.client(), "orders", Some(ScalarAttributeType::N)).await;
    let out = convert(&s3, "s3://lake/orders", &described).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_items(&base, &delta_items(&table, 0).await);
    let created = log_actions(&table, 0);
    let metadata = created.iter().find_map(|a| a.get("metaData")).unwrap();
    let keys: serde_json::Value = serde_json::from_str(
        metadata["configuration"]["ddbsnap.keySchema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(keys[0]["name"], "pk");
    assert_eq!(
        (keys[1]["name"].as_str(), keys[1]["attribute_type"].as_str()),
        (Some("sk"), Some("N"))
    );

    // Each incremental export is one MERGE: the table holds the state after it, item by item.
    let merge = |id: &'static str, version: u64| {
        let s3 = &s3;
        async move {
            let out = convert_id(s3, id, "s3://lake/orders", &delta).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(summary["delta"]["version"], version, "{summary}");
            summary
        }
    };
    let summary = merge(id, 1).await;
    let want: Vec<Item> = changes.state.values().cloned().collect();
    assert_same_items(&want, &delta_items(&table, 1).await);
    let stats = &summary["delta"]["merge"];
    // 50 updates and the key changed twice; 30 deletes; 20 inserts.
    assert_eq!(stats["rows_updated"], 51, "{summary}");
    assert_eq!(stats["rows_deleted"], 30, "{summary}");
    assert_eq!(stats["rows_inserted"], 20, "{summary}");
    assert_eq!(stats["rows_copied"], 400 - 51 - 30, "{summary}");
    // The log says which files were rewritten: version 0's (one file here), removed.
    let v0: Vec<String> = log_actions(&table, 0)
        .iter()
        .filter_map(|a| a["add"]["path"].as_str().map(str::to_owned))
        .collect();
    let v1 = log_actions(&table, 1);
    let removed: Vec<String> = v1
        .iter()
        .filter_map(|a| a["remove"]["path"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(removed, v0);
    let info = v1.iter().find_map(|a| a.get("commitInfo")).unwrap();
    assert_eq!(info["operation"], "MERGE", "{info}");
    assert_eq!(
        info["operationMetrics"]["numTargetRowsDeleted"], "30",
        "{info}"
    );
    // The change log itself is not part of the table: only new files are added, and the
    // run's own change files are gone.
    let added: Vec<&str> = v1
        .iter()
        .filter_map(|a| a["add"]["path"].as_str())
        .collect();
    let run = table.join(added[0]).parent().unwrap().to_owned();
    let mut in_run: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            format!("{}/{name}", run.file_name().unwrap().to_str().unwrap())
        })
        .collect();
    in_run.sort();
    assert_eq!(
        in_run, added,
        "the run's folder holds exactly the files it added"
    );

    let id2 = "01700000086399-changes2";
    let next_day = incremental(21, 22);
    write_export_lines(&s3, id2, &later.records, 3, Damage::None, next_day).await;
    merge(id2, 2).await;
    let want: Vec<Item> = later.state.values().cloned().collect();
    assert_same_items(&want, &delta_items(&table, 2).await);
    // Time travel: every version still reads as it was.
    assert_same_items(&base, &delta_items(&table, 0).await);
    let want: Vec<Item> = changes.state.values().cloned().collect();
    assert_same_items(&want, &delta_items(&table, 1).await);

    // Change sets merge only in order. The same export again is a no-op that says so; an
    // older one, and one after a gap, are refused (exit 11) naming both windows. Each leaves
    // the table byte for byte as it was.
    let before = tree(&table);
    let out = convert_id(&s3, id2, "s3://lake/orders", &delta).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["already_applied"], true, "{summary}");
    assert!(summary["delta"].is_null(), "{summary}");
    let id3 = "01700000432000-changes3";
    let after_gap = incremental(25, 26);
    write_export_lines(&s3, id3, &later.records, 3, Damage::None, after_gap).await;
    for (id, needle) in [(id, "ends at or before that"), (id3, "would be lost")] {
        let out = convert_id(&s3, id, "s3://lake/orders", &delta).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(11), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(
            err.contains("2026-11-21T00:00:00Z → 2026-11-22T00:00:00Z"),
            "the table's window: {err}"
        );
        let refresh = [&delta[..], &["--on-gap", "refresh"]].concat();
        let out = convert_id(&s3, id, "s3://lake/orders", &refresh).await;
        assert_eq!(out.status.code(), Some(11));
    }
    assert!(
        String::from_utf8_lossy(
            &convert_id(&s3, id3, "s3://lake/orders", &delta)
                .await
                .stderr
        )
        .contains("2026-11-25T00:00:00Z → 2026-11-26T00:00:00Z"),
        "the change set's window"
    );
    // Keys other than the table's would merge by the wrong key: refused before any work.
    let out = convert_id(
        &s3,
        id3,
        "s3://lake/orders",
        &["--key", "pk", "--format", "delta"],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is keyed by pk, sk; give --key pk,sk or leave --key out"),
        "{err}"
    );
    assert_eq!(
        tree(&table),
        before,
        "refused and repeated runs wrote nothing"
    );
    // --on-gap force merges the gapped one, and says so; the keys are the table's own.
    let force = ["--format", "delta", "--json", "--on-gap", "force"];
    let out = convert_id(&s3, id3, "s3://lake/orders", &force).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: applied across a gap (--on-gap force)"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["delta"]["version"], 3, "{summary}");
    assert!(
        summary["window_note"]
            .as_str()
            .unwrap()
            .contains("would be lost")
    );
    let want: Vec<Item> = later.state.into_values().collect();
    assert_same_items(&want, &delta_items(&table, 3).await);
}

/// A key attribute the first item has and later ones lack, in an export of 6,000 items: exit 2
/// naming it (the error of the conversion, not of the readers it stopped), and what the run
/// wrote is removed, so the corrected command runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_later_items_lack_is_refused_and_leaves_nothing() {
    let s3 = S3Server::start(&["raw", "lake"]);
    let items = export_items(6000);
    write_export(&s3, &items, 4, Damage::None).await;
    for (to, format) in [("s3://lake/snap", "snapshot"), ("s3://lake/table", "delta")] {
        let dir = s3.root.path().join(to.trim_start_matches("s3://"));
        let out = convert(&s3, to, &["--key", "pk,big", "--format", format]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{format}: {err}");
        assert!(
            err.contains("--key big: an item has no attribute 'big'"),
            "{err}"
        );
        assert!(!err.contains("internal error"), "{err}");
        assert!(tree(&dir).is_empty(), "{format}: {:?}", tree(&dir).keys());
        let out = convert(&s3, to, &["--key", "pk,sk", "--format", format]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {err}");
    }
    assert_same_items(
        &items,
        &delta_items(&s3.root.path().join("lake/table"), 0).await,
    );
}

/// A Delta table is never written into a snapshot folder, nor a snapshot into a Delta table:
/// refused (exit 8) before anything is written, saying what the folder holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kind_of_table_per_folder() {
    let s3 = S3Server::start(&["raw", "lake"]);
    write_export(&s3, &export_items(300), 3, Damage::None).await;
    let refused = |to: &'static str, extra: &'static [&'static str], needles: [&'static str; 2]| {
        let s3 = &s3;
        async move {
            let dir = s3.root.path().join(to.trim_start_matches("s3://"));
            let before = tree(&dir);
            let out = convert(s3, to, extra).await;
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(8), "{extra:?}: {err}");
            for needle in needles {
                assert!(err.contains(needle), "{extra:?}: {err}");
            }
            assert_eq!(tree(&dir), before, "{extra:?} left {to} as it was");
        }
    };
    let out = convert(&s3, "s3://lake/snap", &["--key", "pk,sk"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delta = &["--key", "pk,sk", "--format", "delta"];
    let not_delta = [
        "holds a Parquet snapshot",
        "not a Delta table; write the Delta table to a folder of its own",
    ];
    refused("s3://lake/snap", delta, not_delta).await;

    let out = convert(&s3, "s3://lake/table", delta).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let not_snapshot = [
        "holds a Delta table (_delta_log/), not a snapshot folder",
        "add --format delta to update the table",
    ];
    refused("s3://lake/table", &["--key", "pk,sk"], not_snapshot).await;
    refused(
        "s3://lake/table",
        &["--key", "pk,sk", "--overwrite"],
        not_snapshot,
    )
    .await;
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
    // A kill at `committing` may land after the commit wrote its manifest, or even after it
    // removed the checkpoint: states a real crash leaves too, which the resume must handle.
    let committed = what == "during-manifest" && left.contains("_manifest.json");
    assert!(
        left.contains("_checkpoint.json") || committed,
        "{what}: no checkpoint and no manifest: {left:?}"
    );
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

/// Convert the export at `export` to snapshots under `to` killed at every kill point and
/// resumed, and stopped by Ctrl-C and resumed: each ends with exactly `expected`.
async fn conversion_survives_kills(s3: &S3Server, export: &str, expected: &[Item], to: &str) {
    let convert = |to: &str| -> Vec<String> {
        ["convert-export", export, "--to", to, "--key", "pk,sk"]
            .map(String::from)
            .to_vec()
    };
    for (point, kill_when) in kill_points() {
        let to = format!("{to}/{point}");
        let target = kill_then_resume(s3, convert(&to), &to, point, kill_when).await;
        assert_same_items(expected, &read_snapshot(&target).await);
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        assert_eq!(manifest.mode, "export");
        assert_eq!(manifest.totals.items_written, expected.len() as u64);
    }

    // Ctrl-C: the readers stop, the open file is closed and checkpointed, exit 130 with the
    // hint; the resume then commits every item once.
    let to = &format!("{to}/ctrl-c");
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
    assert_same_items(expected, &read_snapshot(&s3_target(s3, to).await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_conversion_resumes_with_every_item_once() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items = padded_items(40_000);
    write_export(&s3, &items, 4, Damage::None).await;
    conversion_survives_kills(&s3, &RAW.url(EXPORT_ID), &items, "s3://snaps/orders").await;

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

/// Killed and Ctrl-C'd conversions of an incremental export, whose data files are in the
/// prefix's shared folder outside the export's own, resume with every change once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_incremental_conversion_resumes_with_every_change_once() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let (lines, expected) = sample_changes(&padded_items(36_000), false);
    let id = "01763200000000-incr0001";
    let summary = serde_json::json!({"exportType": "INCREMENTAL_EXPORT"});
    let keys = write_export_lines(&s3, id, &lines, 4, Damage::None, summary).await;
    assert!(keys[0].starts_with("raw/AWSDynamoDB/data/"));
    conversion_survives_kills(&s3, &RAW.url(id), &expected, "s3://snaps/changes").await;
}

/// `ddbsnap` with no AWS configuration at all: no `AWS_*` variables, and a home without
/// `~/.aws`.
fn run_without_aws(args: &[&str], home: &std::path::Path) -> Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ddbsnap"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home).args(args).output().unwrap()
}

/// Local exports (a full and an incremental one, copied from the bucket as `aws s3 sync`
/// does) convert, and the change log applies, with no region, profile or `~/.aws` at all; a
/// folder that does not exist is a usage error that creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_exports_convert_with_no_aws_configuration() {
    let s3 = S3Server::start(&["raw"]);
    let items = export_items(600);
    write_export(&s3, &items, 3, Damage::None).await;
    let mut changes = Changes::from(&items);
    for old in items.iter().step_by(5) {
        let mut new = old.clone();
        new.insert("note".into(), s("changed"));
        changes.update(old, new);
    }
    for old in items.iter().skip(1).step_by(9) {
        changes.delete(old);
    }
    let id = "01763300000000-incr0002";
    let summary = serde_json::json!({"exportType": "INCREMENTAL_EXPORT"});
    write_export_lines(&s3, id, &changes.records, 3, Damage::None, summary).await;
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    sync_to_local(&s3, "raw", &raw).await;
    drop(s3);
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();

    let base = path(dir.path().join("base"));
    let export = path(raw.join("AWSDynamoDB").join(EXPORT_ID));
    succeeded(&run_without_aws(
        &["convert-export", &export, "--to", &base, "--key", "pk,sk"],
        &home,
    ));
    let target = local_target(std::path::Path::new(&base)).await;
    assert_same_items(&items, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.region, "us-east-1", "the exported table's region");

    let log = path(dir.path().join("changes"));
    let export = path(raw.join("AWSDynamoDB").join(id));
    succeeded(&run_without_aws(
        &["convert-export", &export, "--to", &log, "--key", "pk,sk"],
        &home,
    ));

    let next = path(dir.path().join("next"));
    succeeded(&run_without_aws(
        &["apply", &log, "--to-snapshot", &base, "--out", &next],
        &home,
    ));
    let want: Vec<Item> = changes.state.into_values().collect();
    let target = local_target(std::path::Path::new(&next)).await;
    assert_same_items(&want, &read_snapshot(&target).await);

    let missing = path(dir.path().join("no-such-dir"));
    let out_dir = dir.path().join("not-created");
    let out = run_without_aws(
        &["convert-export", &missing, "--to", &path(out_dir.clone())],
        &home,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-dir cannot be read"), "{err}");
    assert!(!out_dir.exists() && !dir.path().join("no-such-dir").exists());

    // An incremental export cannot start a Delta table: refused, and the folders opening the
    // destination made are gone again.
    let table = dir.path().join("lake").join("orders");
    let args = ["convert-export", &export, "--to", &path(table.clone())];
    let out = run_without_aws(
        &[&args[..], &["--key", "pk,sk", "--format", "delta"]].concat(),
        &home,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no Delta table to merge"), "{err}");
    assert!(!dir.path().join("lake").exists(), "nothing created");
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
    change_log(
        &s3,
        id,
        &changes.records,
        (20, 21),
        "s3://snaps/orders/changes",
    )
    .await;

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
/// without asking DynamoDB for another export, a full one or an incremental one (whose data
/// files are in the prefix's shared folder); with nothing converted yet it starts afresh (the
/// request's ClientToken finds the same export), so DynamoDB's own checks come first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_in_export_mode_resumes_the_conversion_it_started() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let moto = Moto::start();
    create_table(&aws_context(Some(moto.endpoint())).dynamodb, "orders", None).await;
    let items = padded_items(12_000);
    write_export(&s3, &items, 3, Damage::None).await;
    let (lines, changes) = sample_changes(&padded_items(9_000), false);
    let incremental_id = "01763400000000-incr0003";
    let summary = serde_json::json!({"exportType": "INCREMENTAL_EXPORT"});
    write_export_lines(&s3, incremental_id, &lines, 3, Damage::None, summary).await;
    let since = (chrono::Utc::now() - chrono::TimeDelta::hours(2)).to_rfc3339();
    let until = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let window = ["--incremental", "--since", &since, "--until", &until];

    let snapshot = |to: &str, extra: &[&str]| -> Vec<String> {
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
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--endpoint-url".to_owned(), moto.endpoint()]);
        a.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
        a
    };
    let cases = [
        (EXPORT_ID, &items, "s3://snaps/orders/export-mode", &[][..]),
        (
            incremental_id,
            &changes,
            "s3://snaps/orders/export-mode-changes",
            &window[..],
        ),
    ];
    for (id, want, to, extra) in cases {
        let mut convert: Vec<String> = [
            "convert-export",
            &RAW.url(id),
            "--to",
            to,
            "--file-size",
            "1",
        ]
        .map(String::from)
        .to_vec();
        convert.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
        let first = run_until_killed(convert, |e| e["event"] == "checkpointed").await;
        assert!(first.killed, "{}", first.stderr);

        let resumed = run_until_killed(snapshot(to, extra), |_| false).await;
        assert_eq!(resumed.code, Some(0), "{id}: {}", resumed.stderr);
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
        assert_same_items(want, &read_snapshot(&target).await);
        let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
        assert_eq!((manifest.mode.as_str(), manifest.runs), ("export", 2));
    }
    let to = "s3://snaps/orders/export-mode";
    let snapshot = |to: &str| snapshot(to, &[]);

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

/// A conversion split into shards: 4 `convert-export --shard I/4` processes over an 8-file
/// export, one killed with SIGKILL and run again, then `ddbsnap commit`: as a snapshot on S3,
/// and as version 0 of a new Delta table (the shards share a `--run-id`) read by `deltalake`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_split_into_shards_commits_every_item_once() {
    let s3 = S3Server::start(&["raw", "snaps"]);
    let items = padded_items(20_000);
    write_export(&s3, &items, 8, Damage::None).await;
    let export = RAW.url(EXPORT_ID);
    let endpoint = s3.endpoint();
    let shard = |to: &str, i: u32, extra: &[&str]| -> Vec<String> {
        let shard = format!("{i}/4");
        let mut a: Vec<String> = [
            "convert-export",
            &export,
            "--to",
            to,
            "--key",
            "pk,sk",
            "--file-size",
            "1",
            "--shard",
            &shard,
            "--s3-endpoint-url",
            &endpoint,
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let commit = |to: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "commit",
            to,
            "--shards",
            "4",
            "--s3-endpoint-url",
            &endpoint,
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let to = "s3://snaps/orders/split";
    let killed = run_until_killed(shard(to, 1, &[]), |e| e["event"] == "checkpointed").await;
    assert!(killed.killed, "shard 1 ended first: {}", killed.stderr);
    for i in [0, 2, 3] {
        let run = run_until_killed(shard(to, i, &[]), |_| false).await;
        assert_eq!(run.code, Some(0), "shard {i}: {}", run.stderr);
    }
    let target = s3_target(&s3, to).await;
    let refused = run_until_killed(commit(to, &[]), |_| false).await;
    assert_eq!(refused.code, Some(10), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("1 (running or stopped"),
        "{}",
        refused.stderr
    );
    assert!(!names_under(&target).await.contains("_manifest.json"));
    let top: Vec<String> = target
        .store()
        .list_with_delimiter(Some(&object_store::path::Path::from("orders/split")))
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.location.to_string())
        .collect();
    assert!(
        top.is_empty(),
        "nothing in the folder before the commit: {top:?}"
    );
    let again = run_until_killed(shard(to, 1, &[]), |_| false).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("ddbsnap: resuming:"),
        "{}",
        again.stderr
    );
    let done = run_until_killed(commit(to, &[]), |_| false).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);

    assert_same_items(&items, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.mode, "export");
    assert_eq!(manifest.segments, 8, "one part per data file");
    assert!(
        manifest
            .export
            .unwrap()
            .export_arn
            .unwrap()
            .ends_with(EXPORT_ID)
    );
    let mut expected: std::collections::HashSet<String> =
        manifest.files.iter().map(|f| f.path.clone()).collect();
    expected.insert("_manifest.json".into());
    assert_eq!(names_under(&target).await, expected, "stray files");

    // The same split into a new Delta table, two shards at a time: one version, every item.
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("orders");
    let to = table.to_str().unwrap();
    let delta = ["--format", "delta", "--run-id", "2026-12-01T06:00:00Z"];
    for pair in [[0, 1], [2, 3]] {
        let (a, b) = tokio::join!(
            run_until_killed(shard(to, pair[0], &delta), |_| false),
            run_until_killed(shard(to, pair[1], &delta), |_| false),
        );
        for run in [a, b] {
            assert_eq!(run.code, Some(0), "{}", run.stderr);
        }
    }
    assert!(
        table.join("run=2026-12-01T06-00-00Z/_shards").exists(),
        "the shards share the run= folder --run-id names"
    );
    assert!(
        !table.join("_delta_log").exists(),
        "no version before the commit"
    );
    let done = run_until_killed(commit(to, &[]), |_| false).await;
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(done.stdout.contains("version 0"), "{}", done.stdout);
    let read = run_python("read_delta.py", &[table.as_os_str(), "0".as_ref()]);
    let version: serde_json::Value = serde_json::from_slice(&read).unwrap();
    let rows = version["rows"].as_array().unwrap();
    let keys: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r["pk"], r["sk"]))
        .collect();
    assert_eq!(rows.len(), items.len());
    assert_eq!(keys.len(), items.len(), "every item once");
    // A shard started again after the commit writes nothing into the committed run.
    let late = run_until_killed(shard(to, 2, &delta), |_| false).await;
    assert_eq!(late.code, Some(8), "{}", late.stderr);
    assert!(
        late.stderr.contains("committed as version 0"),
        "{}",
        late.stderr
    );
}
