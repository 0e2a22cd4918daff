//! Crash safety: the real binary killed with SIGKILL at several points of a 50,000-item scan,
//! then `--resume`d, must commit a snapshot holding every item exactly once, value by value
//! (contracts C1, C3, C5), on local disk and on S3 (s3s-fs). Also: S3 part uploads failing
//! through a proxy, and a schema discovered after a resume.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::reader::FileItems;
use ddbsnap::sink::{Destination, S3Options, Target};
use futures::TryStreamExt;
use proxy::{Action, Proxy};
use serde_json::Value;

const ITEMS: u64 = 50_000;

/// An item with every kind of value: exact decimals, a 38-digit number, binary, a set, a map,
/// a list, and ~120 bytes of text.
fn test_item(i: u64) -> Item {
    let mut entries = vec![
        ("pk", s(&format!("item-{i:06}"))),
        (
            "price",
            n(&format!("{}.{:03}", i * 7919 % 100_000, i % 1000)),
        ),
        ("raw", AV::B(Blob::new(random_bytes(i, 12)))),
        ("tags", AV::Ss(vec![format!("t{}", i % 7), "all".into()])),
        (
            "meta",
            AV::M(item(vec![
                ("rank", n(&i.to_string())),
                ("odd", AV::Bool(i % 2 == 1)),
            ])),
        ),
        ("hist", AV::L(vec![n(&(i % 13).to_string()), s("x")])),
        ("body", s(&random_text(i, 120))),
    ];
    if i % 1000 == 0 {
        entries.push(("big", n("12345678901234567890123456789012345678")));
    }
    item(entries)
}

async fn load_table(db: &Dynalite, table: &str) -> Vec<Item> {
    let client = db.client();
    create_table(&client, table, None).await;
    put_items(&client, table, (0..ITEMS).map(test_item).collect()).await;
    let truth = scan_all(&client, table).await;
    assert_eq!(truth.len() as u64, ITEMS);
    truth
}

/// What one run of the binary did.
struct Run {
    killed: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `ddbsnap snapshot ...` with `--progress json`; SIGKILL it as soon as `kill_when` says so
/// for a progress event.
async fn run_ddbsnap(
    args: Vec<String>,
    mut kill_when: impl FnMut(&Value) -> bool + Send + 'static,
) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("ddbsnap"));
        cmd.arg("snapshot").args(&args).args(["--progress", "json"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(test_env())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = String::new();
        let mut killed = false;
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            if !killed
                && let Ok(event) = serde_json::from_str::<Value>(&line)
                && kill_when(&event)
            {
                child.kill().unwrap(); // SIGKILL: no cleanup of any kind
                killed = true;
            }
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let out = child.wait_with_output().unwrap();
        Run {
            killed,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    })
    .await
    .unwrap()
}

/// Where the kill happens, by progress event.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// While pages stream into an open file, after two files were closed.
    MidPage,
    /// The moment the third data file is closed, before or while its checkpoint is saved.
    BetweenFiles,
    /// Right after the fourth checkpoint.
    AfterCheckpoint,
    /// When every file is complete and the manifest is being written.
    DuringManifest,
}

impl KillPoint {
    const ALL: [KillPoint; 4] = [
        KillPoint::MidPage,
        KillPoint::BetweenFiles,
        KillPoint::AfterCheckpoint,
        KillPoint::DuringManifest,
    ];

    fn name(self) -> &'static str {
        match self {
            KillPoint::MidPage => "mid-page",
            KillPoint::BetweenFiles => "between-files",
            KillPoint::AfterCheckpoint => "after-checkpoint",
            KillPoint::DuringManifest => "during-manifest",
        }
    }

    fn trigger(self) -> impl FnMut(&Value) -> bool + Send + 'static {
        let (mut files, mut checkpoints, mut pages_after) = (0, 0, 0);
        move |event| {
            match event["event"].as_str().unwrap_or("") {
                "file_written" => files += 1,
                "checkpointed" => checkpoints += 1,
                "page" if files >= 2 => pages_after += 1,
                _ => {}
            }
            match self {
                KillPoint::MidPage => pages_after == 3,
                KillPoint::BetweenFiles => event["event"] == "file_written" && files == 3,
                KillPoint::AfterCheckpoint => event["event"] == "checkpointed" && checkpoints == 4,
                KillPoint::DuringManifest => event["event"] == "committing",
            }
        }
    }
}

fn args(
    table: &str,
    to: &str,
    db: &Dynalite,
    s3: Option<&S3Server>,
    extra: &[&str],
) -> Vec<String> {
    let mut a: Vec<String> = [table, "--to", to, "--endpoint-url", &db.endpoint()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Small files, several segments: many checkpoints, positions in every segment.
    a.extend(["--file-size", "1", "--segments", "4"].map(String::from));
    if let Some(s3) = s3 {
        a.extend(["--s3-endpoint-url".to_owned(), s3.endpoint()]);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

async fn open_target(to: &str, s3: Option<&S3Server>) -> Target {
    let dest = Destination::parse(to).unwrap();
    let aws = aws_context(None);
    let options = S3Options {
        endpoint_url: s3.map(S3Server::endpoint),
        region: None,
    };
    Target::open(&dest, Some(&aws.sdk), &options).await.unwrap()
}

async fn names_under(target: &Target) -> HashSet<String> {
    let prefix = object_store::path::Path::from(
        target
            .url()
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .map_or("", |(_, p)| p),
    );
    target
        .store()
        .list(Some(&prefix))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap()
}

/// Kill a run at `point`, resume it, and check the committed snapshot item by item.
async fn kill_and_resume(
    db: &Dynalite,
    s3: Option<&S3Server>,
    truth: &[Item],
    to: &str,
    point: KillPoint,
) {
    let what = point.name();
    let first = run_ddbsnap(args("orders", to, db, s3, &[]), point.trigger()).await;
    assert!(
        first.killed,
        "{what}: the run ended (exit {:?}) before the kill point; stderr:\n{}",
        first.code, first.stderr
    );
    let target = open_target(to, s3).await;
    let before = names_under(&target).await;
    assert!(before.contains("_checkpoint.json"), "{what}: {before:?}");
    if !matches!(point, KillPoint::DuringManifest) {
        assert!(
            !before.contains("_manifest.json"),
            "{what}: a killed run must not look complete"
        );
        // Without --resume the unfinished snapshot is refused, with a hint.
        let refused = run_ddbsnap(args("orders", to, db, s3, &[]), |_| false).await;
        assert_eq!(refused.code, Some(8), "{what}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("pass --resume"),
            "{}",
            refused.stderr
        );
    }

    let resumed = run_ddbsnap(args("orders", to, db, s3, &["--resume"]), |_| false).await;
    assert_eq!(resumed.code, Some(0), "{what}: {}", resumed.stderr);
    if before.contains("_manifest.json") {
        assert!(
            resumed.stdout.contains("already committed"),
            "{}",
            resumed.stdout
        );
    } else {
        let kept = resumed
            .stderr
            .lines()
            .find(|l| l.starts_with("ddbsnap: resuming:"))
            .unwrap_or_else(|| panic!("{what}: no resume line in\n{}", resumed.stderr));
        if !matches!(point, KillPoint::DuringManifest) {
            assert!(
                !kept.contains(" 0 files"),
                "{what}: nothing was kept: {kept}"
            );
        }
    }

    // Every item exactly once, every value exact, one schema in every file.
    let got = read_snapshot(&target).await;
    assert_same_items(truth, &got);
    // Nothing but the manifest and the files it lists.
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    let mut expected: HashSet<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    expected.insert("_manifest.json".into());
    assert_eq!(names_under(&target).await, expected, "{what}: stray files");
    assert!(manifest.runs >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_resume_on_local_disk_keeps_every_item_once() {
    let db = Dynalite::start();
    let truth = load_table(&db, "orders").await;
    let dir = tempfile::tempdir().unwrap();
    for point in KillPoint::ALL {
        let to = dir.path().join(point.name());
        kill_and_resume(&db, None, &truth, to.to_str().unwrap(), point).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_resume_on_s3_keeps_every_item_once() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&["snaps"]);
    let truth = load_table(&db, "orders").await;
    for point in KillPoint::ALL {
        let to = format!("s3://snaps/orders/{}", point.name());
        kill_and_resume(&db, Some(&s3), &truth, &to, point).await;
    }
}
