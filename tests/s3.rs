//! The S3 path against a real S3-compatible server (s3s-fs): round trip, multipart uploads,
//! and a failure in the middle of an upload that must leave no manifest and no orphaned parts.

mod common;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use common::*;
use ddbsnap::SnapshotConfig;
use ddbsnap::convert::Item;
use ddbsnap::sink::{S3Options, Target};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// Wraps a real store; counts multipart uploads, parts and aborts, and can fail the Nth part.
#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fail_part: Option<usize>,
    uploads: AtomicUsize,
    parts: Arc<AtomicUsize>,
    aborts: Arc<AtomicUsize>,
}

impl FaultyStore {
    fn new(inner: Arc<dyn ObjectStore>, fail_part: Option<usize>) -> Self {
        FaultyStore {
            inner,
            fail_part,
            uploads: AtomicUsize::new(0),
            parts: Arc::new(AtomicUsize::new(0)),
            aborts: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    fail_part: Option<usize>,
    parts: Arc<AtomicUsize>,
    aborts: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = self.parts.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_part == Some(n) {
            return Box::pin(async move {
                Err(object_store::Error::Generic {
                    store: "faulty",
                    source: "injected part upload failure".into(),
                })
            });
        }
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }
    async fn abort(&mut self) -> object_store::Result<()> {
        self.aborts.fetch_add(1, Ordering::SeqCst);
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FaultyUpload {
            inner: self.inner.put_multipart_opts(location, opts).await?,
            fail_part: self.fail_part,
            parts: Arc::clone(&self.parts),
            aborts: Arc::clone(&self.aborts),
        }))
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// ~9 MB of incompressible items: the single data file needs a multipart upload at 5 MiB parts.
async fn load_incompressible(db: &Dynalite, table: &str) -> Vec<Item> {
    let client = db.client();
    create_table(&client, table, None).await;
    let items: Vec<Item> = (0..3000u32)
        .map(|i| {
            let bytes = random_bytes(u64::from(i), 3000);
            item(vec![
                ("pk", s(&format!("k{i}"))),
                ("blob", AV::B(Blob::new(bytes))),
            ])
        })
        .collect();
    put_items(&client, table, items).await;
    scan_all(&client, table).await
}

/// The config and S3 target for snapshotting `table` to `url` on the s3s-fs server.
async fn s3_target(s3: &S3Server, table: &str, url: &str) -> (SnapshotConfig, Target) {
    let config = SnapshotConfig::builder(table, url)
        .segments(2)
        .part_bytes(5 << 20)
        .build()
        .unwrap();
    let aws = aws_context(None);
    let target = Target::open(
        config.destination(),
        Some(&aws.sdk),
        &S3Options {
            endpoint_url: Some(s3.endpoint()),
            region: None,
        },
    )
    .await
    .unwrap();
    (config, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_snapshot_round_trips_with_a_multipart_upload() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&["snapshots"]);
    let truth = load_incompressible(&db, "big").await;
    let (config, target) = s3_target(&s3, "big", "s3://snapshots/tables/big/run1").await;
    let counting = Arc::new(FaultyStore::new(Arc::clone(target.store()), None));
    let counted = Target::from_store(counting.clone(), "tables/big/run1", target.url());
    let summary = ddbsnap::Snapshot::new(config.clone())
        .aws(db.aws())
        .target(counted)
        .await
        .unwrap();
    assert_eq!(summary.items, 3000);
    assert!(summary.bytes > 5 << 20, "{summary:?}");
    assert!(
        counting.uploads.load(Ordering::SeqCst) >= 1,
        "a multipart upload was used"
    );
    assert!(
        counting.parts.load(Ordering::SeqCst) >= 2,
        "with several parts"
    );
    assert_eq!(counting.aborts.load(Ordering::SeqCst), 0);

    // Read back through a plain S3 store: the manifest and every value.
    let got = read_snapshot(&target).await;
    assert_same_items(&truth, &got);
    // And the objects really are in the bucket on the server's disk.
    let on_disk = s3
        .root
        .path()
        .join("snapshots/tables/big/run1/_manifest.json");
    assert!(on_disk.exists(), "{}", on_disk.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_part_upload_aborts_leaves_no_manifest_and_resumes() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&["snapshots"]);
    let truth = load_incompressible(&db, "big").await;
    let (config, target) = s3_target(&s3, "big", "s3://snapshots/tables/big/failed").await;
    let faulty = Arc::new(FaultyStore::new(Arc::clone(target.store()), Some(2)));
    let failing = Target::from_store(faulty.clone(), "tables/big/failed", target.url());
    let err = ddbsnap::Snapshot::new(config.clone())
        .aws(db.aws())
        .target(failing)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 6, "{err}");
    assert!(
        err.to_string().contains("s3://snapshots/tables/big/failed"),
        "{err}"
    );
    assert!(err.to_string().contains("--resume"), "{err}");
    assert_eq!(
        faulty.aborts.load(Ordering::SeqCst),
        1,
        "the upload was aborted"
    );
    let dir = s3.root.path().join("snapshots/tables/big/failed");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert_eq!(left, ["_checkpoint.json"], "only the checkpoint is left");

    // Once S3 works again, --resume finishes the snapshot.
    let resume = SnapshotConfig::builder("big", "s3://snapshots/tables/big/failed")
        .segments(2)
        .resume(true)
        .build()
        .unwrap();
    let summary = ddbsnap::Snapshot::new(resume.clone())
        .aws(db.aws())
        .target(target.clone())
        .await
        .unwrap();
    assert_eq!(summary.runs, 2);
    assert_same_items(&truth, &read_snapshot(&target).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_fails_before_scanning() {
    let db = Dynalite::start();
    let s3 = S3Server::start(&[]);
    create_table(&db.client(), "tbl", None).await;
    let (config, target) = s3_target(&s3, "tbl", "s3://no-such-bucket/x").await;
    let err = ddbsnap::Snapshot::new(config.clone())
        .aws(db.aws())
        .target(target)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 6, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("bucket 'no-such-bucket' does not exist"),
        "{text}"
    );
    assert!(!text.contains('<'), "no S3 response body: {text}");

    // An export read from a bucket that does not exist: the bucket is named (exit 6), not a
    // damaged export (exit 7), and nothing is created.
    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("converted");
    let args = [
        "convert-export",
        "s3://no-such-bucket/raw/AWSDynamoDB/01700000000000-abcdef01",
        "--to",
        to.to_str().unwrap(),
        "--key",
        "pk",
        "--s3-endpoint-url",
        &s3.endpoint(),
    ];
    let run = run_ddbsnap_to_end(args.iter().map(|a| a.to_string()).collect()).await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("bucket 'no-such-bucket' does not exist") && !stderr.contains('<'),
        "{stderr}"
    );
    assert!(!to.exists(), "nothing created");
}
