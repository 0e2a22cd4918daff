//! Crash safety: the real binary killed with SIGKILL at several points of a 50,000-item scan,
//! then `--resume`d, must commit a snapshot holding every item exactly once, value by value
//! (contracts C1, C3, C5), on local disk and on S3 (s3s-fs). Also: S3 part uploads failing
//! through a proxy, and a schema discovered after a resume.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::reader::FileItems;
use ddbsnap::sink::{Destination, S3Options, Target};
use proxy::{Action, Proxy};
use serde_json::Value;

const ITEMS: u64 = 50_000;

async fn load_table(db: &Dynalite, table: &str) -> Vec<Item> {
    let client = db.client();
    create_table(&client, table, None).await;
    put_items(&client, table, (0..ITEMS).map(mixed_item).collect()).await;
    let truth = scan_all(&client, table).await;
    assert_eq!(truth.len() as u64, ITEMS);
    truth
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
    let mut a: Vec<String> = [
        "snapshot",
        table,
        "--to",
        to,
        "--endpoint-url",
        &db.endpoint(),
    ]
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

/// Kill a run at `point`, resume it, and check the committed snapshot item by item.
async fn kill_and_resume(
    db: &Dynalite,
    s3: Option<&S3Server>,
    truth: &[Item],
    to: &str,
    point: KillPoint,
    extra: &[&str],
) {
    let what = point.name();
    let first = run_until_killed(args("orders", to, db, s3, extra), point.trigger()).await;
    assert!(
        first.killed,
        "{what}: the run ended (exit {:?}) before the kill point; stderr:\n{}",
        first.code, first.stderr
    );
    let target = open_target(to, s3).await;
    let before = names_under(&target).await;
    // The kill at `committing` races the commit itself: on local disk the manifest can be
    // written, and even the checkpoint removed, before the signal lands. Each of those states
    // is one a real crash leaves, and the resume below must handle all of them.
    let committed = matches!(point, KillPoint::DuringManifest) && before.contains("_manifest.json");
    assert!(
        before.contains("_checkpoint.json") || committed,
        "{what}: no checkpoint and no manifest: {before:?}"
    );
    if !matches!(point, KillPoint::DuringManifest) {
        assert!(
            !before.contains("_manifest.json"),
            "{what}: a killed run must not look complete"
        );
        // Without --resume the unfinished snapshot is refused, with a hint.
        let refused = run_until_killed(args("orders", to, db, s3, extra), |_| false).await;
        assert_eq!(refused.code, Some(8), "{what}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("pass --resume"),
            "{}",
            refused.stderr
        );
    }

    let resume = [extra, &["--resume"]].concat();
    let resumed = run_until_killed(args("orders", to, db, s3, &resume), |_| false).await;
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
        kill_and_resume(&db, None, &truth, to.to_str().unwrap(), point, &[]).await;
    }
}

/// Three conversion lanes over four segments (one lane takes two): each lane's files and
/// positions go into the one checkpoint, and a resume from any kill point is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_resume_with_three_conversion_threads_keeps_every_item_once() {
    let db = Dynalite::start();
    let truth = load_table(&db, "orders").await;
    let dir = tempfile::tempdir().unwrap();
    for point in KillPoint::ALL {
        let to = dir.path().join(point.name());
        let threads = ["--threads", "3"];
        kill_and_resume(&db, None, &truth, to.to_str().unwrap(), point, &threads).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_resume_on_s3_keeps_every_item_once() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&["snaps"]);
    let truth = load_table(&db, "orders").await;
    for point in KillPoint::ALL {
        let to = format!("s3://snaps/orders/{}", point.name());
        kill_and_resume(&db, Some(&s3), &truth, &to, point, &[]).await;
    }
}

/// ~9 MB of incompressible items: one data file, uploaded in two 5 MiB parts.
async fn load_incompressible(db: &Dynalite, table: &str) -> Vec<Item> {
    let client = db.client();
    create_table(&client, table, None).await;
    let items = (0..3000u64)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("k{i}"))),
                ("blob", AV::B(Blob::new(random_bytes(i, 3000)))),
            ])
        })
        .collect();
    put_items(&client, table, items).await;
    scan_all(&client, table).await
}

/// A proxy in front of s3s-fs answering part uploads (`PUT ...?partNumber=`) chosen by `fail`
/// with `status`, counting them.
async fn failing_parts(
    s3: &S3Server,
    status: u16,
    fail: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> (Proxy, Arc<AtomicUsize>) {
    let failed = Arc::new(AtomicUsize::new(0));
    let seen = AtomicUsize::new(0);
    let counter = Arc::clone(&failed);
    let rule: proxy::Rule = Arc::new(move |line, _| {
        if !(line.starts_with("PUT ") && line.contains("partNumber=")) {
            return Action::Forward;
        }
        if !fail(seen.fetch_add(1, Ordering::SeqCst)) {
            return Action::Forward;
        }
        counter.fetch_add(1, Ordering::SeqCst);
        let code = if status == 503 {
            "SlowDown"
        } else {
            "AccessDenied"
        };
        Action::Respond {
            status,
            body: format!("<Error><Code>{code}</Code><Message>injected</Message></Error>"),
        }
    });
    (Proxy::start(s3.port, rule).await, failed)
}

fn s3_args(db: &Dynalite, to: &str, s3_endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "snapshot",
        "big",
        "--to",
        to,
        "--endpoint-url",
        &db.endpoint(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["--s3-endpoint-url", s3_endpoint].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_part_failures_are_retried_or_fail_cleanly() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&["snaps"]);
    let truth = load_incompressible(&db, "big").await;

    // Every other part upload answered 503 SlowDown: retried, and the snapshot commits.
    let (proxy, failed) = failing_parts(&s3, 503, |n| n % 2 == 0).await;
    let to = "s3://snaps/big/flaky";
    let run = run_until_killed(s3_args(&db, to, &proxy.endpoint(), &[]), |_| false).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        failed.load(Ordering::SeqCst) >= 2,
        "part uploads were failed"
    );
    let target = open_target(to, Some(&s3)).await;
    assert_same_items(&truth, &read_snapshot(&target).await);

    // Every part upload refused: a clean failure, no manifest, the upload aborted; a resume
    // once S3 accepts uploads again commits the whole table.
    let (proxy, failed) = failing_parts(&s3, 403, |_| true).await;
    let to = "s3://snaps/big/refused";
    let run = run_until_killed(s3_args(&db, to, &proxy.endpoint(), &[]), |_| false).await;
    assert_eq!(run.code, Some(6), "{}", run.stderr);
    assert!(failed.load(Ordering::SeqCst) >= 1);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    assert!(
        error.contains("uploading _staging/part-00000.parquet"),
        "{error}"
    );
    assert!(error.contains("with --resume to continue"), "{error}");
    let target = open_target(to, Some(&s3)).await;
    assert_eq!(
        names_under(&target).await,
        HashSet::from(["_checkpoint.json".to_owned()])
    );
    let run = run_until_killed(s3_args(&db, to, &s3.endpoint(), &["--resume"]), |_| false).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_same_items(&truth, &read_snapshot(&target).await);
}

/// Cancels the run (like Ctrl-C) once `files` data files are checkpointed.
struct StopAfter {
    files: usize,
    cancel: ddbsnap::CancellationToken,
}

impl ddbsnap::progress::Progress for StopAfter {
    fn event(&self, event: &ddbsnap::progress::ProgressEvent) {
        if let ddbsnap::progress::ProgressEvent::Checkpointed { files, .. } = event
            && *files >= self.files
        {
            self.cancel.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attribute_first_seen_after_a_resume_gives_one_schema() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "orders", None).await;
    let base = |i: u64| {
        item(vec![
            ("pk", s(&format!("k{i:05}"))),
            ("n", n(&i.to_string())),
            ("body", s(&random_text(i, 1000))),
        ])
    };
    put_items(&client, "orders", (0..5000).map(base).collect()).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_str().unwrap();
    let config = |resume: bool| {
        ddbsnap::SnapshotConfig::builder("orders", to)
            .segments(2)
            .target_file_bytes(1 << 20)
            // ~5 MB at 300 RCU/s: about two seconds, so the stop comes mid-scan.
            .max_rcu(300.0)
            .read_fraction(1.0)
            .resume(resume)
            .build()
            .unwrap()
    };
    let target = open_target(to, None).await;

    // First run: stopped after two files are checkpointed.
    let cancel = ddbsnap::CancellationToken::new();
    let stop = Arc::new(StopAfter {
        files: 2,
        cancel: cancel.clone(),
    });
    let err = ddbsnap::Snapshot::new(config(false))
        .aws(db.aws())
        .target(target.clone())
        .progress(stop)
        .cancel(cancel)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 130, "{err}");

    // Items not yet in a checkpointed file gain a new attribute: the resumed scan sees it,
    // the files already written do not have it.
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("_checkpoint.json")).unwrap())
            .unwrap();
    let mut done = HashSet::new();
    for f in checkpoint["files"].as_array().expect("a checkpoint") {
        let path = f["path"].as_str().unwrap();
        let mut items = FileItems::open(&target, path).await.unwrap();
        assert!(!items.columns().contains_key("late"));
        while let Some(batch) = items.next_batch().await.unwrap() {
            done.extend(batch.iter().map(key_of));
        }
    }
    assert!(done.len() >= 1000 && done.len() < 5000, "{}", done.len());
    let changed: Vec<Item> = (0..5000)
        .map(base)
        .filter(|it| !done.contains(&key_of(it)))
        .map(|mut it| {
            let score = format!("{}.25", it.len());
            it.insert(
                "late".into(),
                AV::M(item(vec![("score", n(&score)), ("tag", s("new"))])),
            );
            it
        })
        .collect();
    put_items(&client, "orders", changed).await;

    let summary = ddbsnap::Snapshot::new(config(true))
        .aws(db.aws())
        .target(target.clone())
        .await
        .unwrap();
    assert_eq!(summary.runs, 2);
    assert!(summary.files_rewritten >= 2, "{summary:?}");
    // read_snapshot checks that every file has the manifest's schema.
    let got = read_snapshot(&target).await;
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert!(manifest.schema.columns.contains_key("late"));
    assert_same_items(&scan_all(&client, "orders").await, &got);
}
