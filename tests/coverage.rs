//! Contract C1: every item exactly once, whatever the segment count; empty tables work.

mod common;

use aws_sdk_dynamodb::types::ScalarAttributeType;
use common::*;
use ddbsnap::convert::Item;
use ddbsnap::sink::Target;
use ddbsnap::sink::reader::FileItems;

async fn snapshot_segments(
    db: &Dynalite,
    table: &str,
    segments: u32,
) -> (tempfile::TempDir, Target) {
    let run = snapshot_local(&db.aws(), table, |b| b.segments(segments)).await;
    let (dir, target) = (run.dir, run.target);
    let summary = run.result.unwrap();
    assert_eq!(summary.segments, segments);
    (dir, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_exactly_once_with_1_4_and_32_segments() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "cover", Some(ScalarAttributeType::N)).await;
    let items: Vec<Item> = (0..20_000)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("user#{}", i % 1733))),
                ("sk", n(&i.to_string())),
                ("v", n(&format!("{}.{}", i, i % 7))),
                ("body", s(&"b".repeat(200 + i % 300))),
            ])
        })
        .collect();
    put_items(&client, "cover", items).await;
    let truth = scan_all(&client, "cover").await;
    assert_eq!(truth.len(), 20_000);
    for segments in [1, 4, 32] {
        let (_dir, target) = snapshot_segments(&db, "cover", segments).await;
        let got = read_snapshot(&target).await;
        assert_same_items(&truth, &got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_table_gives_a_valid_snapshot_with_zero_rows() {
    let db = Dynalite::start();
    create_table(&db.client(), "empty", Some(ScalarAttributeType::B)).await;
    let (dir, target) = snapshot_segments(&db, "empty", 4).await;
    assert!(read_snapshot(&target).await.is_empty());
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.files.len(), 1, "one empty file carries the schema");
    assert_eq!(manifest.totals.items_written, 0);
    let file = FileItems::open(&target, &manifest.files[0].path)
        .await
        .unwrap();
    let names: Vec<&String> = file.columns().keys().collect();
    assert_eq!(names, ["pk", "sk"], "key columns exist even with no items");
    assert!(dir.path().join("_manifest.json").exists());
}
