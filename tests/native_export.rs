//! The native export's control plane against moto server: point-in-time recovery off gives a
//! clear error; an export is started and polled to COMPLETED, and one into a missing bucket
//! ends FAILED with DynamoDB's failure code. (moto writes no export files; the data path is
//! tested on fixtures in tests/export.rs.)

mod common;

use std::time::Duration;

use common::*;
use ddbsnap::progress::NoProgress;
use ddbsnap::source::export::{ExportRequest, run_export};
use ddbsnap::table::TableInfo;

fn request(bucket: &str) -> ExportRequest {
    ExportRequest {
        bucket: bucket.into(),
        prefix: "raw/orders".into(),
        timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_control_plane() {
    let moto = Moto::start();
    let aws = aws_context(Some(moto.endpoint()));
    create_table(&aws.dynamodb, "orders", None).await;
    let table = TableInfo::describe(&aws, "orders").await.unwrap();

    // Point-in-time recovery is off: say so, and how to turn it on or use a scan.
    let err = run_export(&aws, &table, &request("exports"), &NoProgress)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 2, "{msg}");
    assert!(
        msg.contains("point-in-time recovery is off for table 'orders'"),
        "{msg}"
    );
    assert!(msg.contains("update-continuous-backups"), "{msg}");
    assert!(msg.contains("leave out --mode export"), "{msg}");
    // Every way into the library honours the export request (an opened target once ran a
    // Scan instead), and a refused run leaves the destination as it found it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("orders");
    let config = ddbsnap::SnapshotConfig::builder("orders", out.to_str().unwrap())
        .export(request("exports"))
        .build()
        .unwrap();
    let target = ddbsnap::sink::Target::open(config.destination(), None, config.s3())
        .await
        .unwrap();
    let runs = [
        ddbsnap::Snapshot::new(config.clone())
            .aws(aws.clone())
            .target(target),
        ddbsnap::Snapshot::new(config.clone()).aws(aws.clone()),
    ];
    for (i, run) in runs.into_iter().enumerate() {
        std::fs::remove_dir_all(&out).ok();
        let err = run.await.unwrap_err();
        assert!(
            err.to_string().contains("point-in-time recovery is off"),
            "way {i}: {err}"
        );
    }
    assert!(!out.exists(), "a refused run leaves no folder behind");

    enable_pitr(&aws.dynamodb, "orders").await;

    // Into a bucket that exists: COMPLETED, and where its files are.
    moto.create_bucket("exports");
    let done = run_export(&aws, &table, &request("exports"), &NoProgress)
        .await
        .unwrap();
    let id = done.arn.rsplit('/').next().unwrap();
    assert_eq!(
        done.dir,
        format!("s3://exports/raw/orders/AWSDynamoDB/{id}")
    );

    // An ION export, incremental, encrypted: accepted and completed too.
    let mut ion = request("exports");
    ion.ion = true;
    ion.sse_algorithm = Some("AES256".into());
    ion.incremental = Some(ddbsnap::source::export::IncrementalRange::Window(
        ddbsnap::source::export::IncrementalWindow {
            from: chrono::Utc::now() - chrono::TimeDelta::hours(2),
            to: chrono::Utc::now() - chrono::TimeDelta::hours(1),
            old_images: true,
        },
    ));
    let done = run_export(&aws, &table, &ion, &NoProgress).await.unwrap();
    assert!(done.dir.starts_with("s3://exports/raw/orders/AWSDynamoDB/"));

    // Into a bucket that does not: FAILED with DynamoDB's code and message.
    let err = run_export(&aws, &table, &request("no-such-bucket"), &NoProgress)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 1, "{msg}");
    assert!(msg.contains("failed: S3NoSuchBucket"), "{msg}");
}

async fn ddbsnap(args: Vec<String>) -> std::process::Output {
    run_ddbsnap_to_end(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_mode_on_the_command_line() {
    let moto = Moto::start();
    let aws = aws_context(Some(moto.endpoint()));
    create_table(&aws.dynamodb, "orders", None).await;
    moto.create_bucket("exports");
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("snap");
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = ["snapshot", "orders", "--to", to.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--endpoint-url".into(), moto.endpoint()]);
        a.extend(["--s3-endpoint-url".into(), moto.endpoint()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--mode", "export"],
            2,
            "--mode export needs --export-to",
        ),
        (
            vec!["--mode", "export", "--export-to", "./local"],
            2,
            "must be an s3://bucket/prefix URL",
        ),
        (
            vec![
                "--mode",
                "export",
                "--export-to",
                "s3://exports/raw",
                "--index",
                "x",
            ],
            2,
            "--index cannot be used with --mode export",
        ),
        (
            vec!["--export-to", "s3://exports/raw"],
            2,
            "--export-to needs --mode export",
        ),
        (
            vec![
                "--mode",
                "export",
                "--export-to",
                "s3://exports/raw",
                "--incremental",
                "--since",
                "2026-11-20T00:00:00Z",
                "--until",
                "2026-11-20T00:10:00Z",
            ],
            2,
            "at least 15 minutes",
        ),
        (
            vec![
                "--mode",
                "export",
                "--export-to",
                "s3://exports/raw",
                "--incremental",
                "--since",
                "2026-11-20T00:00:00Z",
            ],
            2,
            "--incremental needs --until",
        ),
        (
            vec!["--mode", "export", "--export-to", "s3://exports/raw"],
            2,
            "point-in-time recovery is off for table 'orders'",
        ),
    ];
    for (extra, code, needle) in cases {
        let out = ddbsnap(base(&extra)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    assert!(!to.join("_manifest.json").exists());
}

/// `--incremental --since last` continues a Delta table from where its log says it is current:
/// refused without --format delta or without a table; after a full refresh moments ago there is
/// no 15-minute window yet; a table current only up to before point-in-time recovery began
/// cannot be continued by exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_exports_since_last_continue_the_delta_table() {
    let moto = Moto::start();
    let aws = aws_context(Some(moto.endpoint()));
    create_table(&aws.dynamodb, "orders", None).await;
    put_items(
        &aws.dynamodb,
        "orders",
        vec![item(vec![("pk", s("a")), ("v", n("1"))])],
    )
    .await;
    moto.create_bucket("exports");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("orders");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["snapshot", "orders", "--to", table.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--endpoint-url".into(), moto.endpoint()]);
        a.extend(["--s3-endpoint-url".into(), moto.endpoint()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let since_last = [
        "--mode",
        "export",
        "--export-to",
        "s3://exports/raw",
        "--incremental",
        "--since",
        "last",
    ];
    let fails_with = |code: i32, extra: Vec<&'static str>, needle: &'static str| {
        let args = args(&extra);
        async move {
            let out = ddbsnap(args).await;
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
    };
    let fails = |extra, needle| fails_with(2, extra, needle);
    fails(since_last.to_vec(), "needs --format delta").await;
    let delta = [&since_last[..], &["--format", "delta"]].concat();
    fails(delta.clone(), "has no Delta table to continue").await;

    // A full refresh by Scan starts the table; point-in-time recovery is turned on after it.
    let out = ddbsnap(args(&["--format", "delta"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    enable_pitr(&aws.dynamodb, "orders").await;
    // A gap no export can cover: exit code 11, with what to do.
    fails_with(11, delta.clone(), "reaches back").await;
    fails_with(11, delta.clone(), "--on-gap refresh (a full export)").await;

    // A second full refresh, now inside the recovery window: current up to moments ago, so
    // no export window of 15 minutes exists yet.
    let out = ddbsnap(args(&["--format", "delta"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails(delta, "nothing to export before").await;
    assert!(!table.join("_delta_log/00000000000000000002.json").exists());
}
