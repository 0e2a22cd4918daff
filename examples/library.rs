//! Snapshot a table from Rust code and read a few items back.
//!
//! ```sh
//! cargo run --release --example library -- TABLE DESTINATION [ENDPOINT_URL]
//! # against the demo server started by scripts/demo (--release reuses its build):
//! AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
//!   cargo run --release --example library -- demo ./snapshots/demo-lib http://127.0.0.1:8000
//! ```

use std::sync::Arc;

use ddbsnap::progress::BarProgress;
use ddbsnap::sink::reader::{FileItems, read_manifest};
use ddbsnap::sink::{S3Options, Target};
use ddbsnap::{SnapshotConfig, aws::AwsContext};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(table), Some(to)) = (args.next(), args.next()) else {
        eprintln!("usage: library TABLE DESTINATION [ENDPOINT_URL]");
        std::process::exit(2);
    };
    let mut builder = SnapshotConfig::builder(table, to).overwrite(true);
    if let Some(endpoint) = args.next() {
        builder = builder.endpoint_url(endpoint);
    }
    let config = builder.build()?;

    // One call does it all: plan, scan, convert, write, commit.
    let summary = ddbsnap::Snapshot::new(config.clone())
        .progress(Arc::new(BarProgress::new()))
        .await?;
    println!(
        "{} items, {} files, {} bytes, {:.1} RCU in {:.2} s -> {}",
        summary.items,
        summary.files,
        summary.bytes,
        summary.consumed_rcu,
        summary.seconds,
        summary.url
    );

    // Read the snapshot back as DynamoDB items, using the schema stored in each file.
    let aws = AwsContext::load(config.aws()).await?;
    let target = Target::open(config.destination(), Some(&aws.sdk), &S3Options::default()).await?;
    let manifest = read_manifest(&target).await?;
    println!(
        "columns: {:?}",
        manifest.schema.columns.keys().collect::<Vec<_>>()
    );
    if let Some(file) = manifest.files.first() {
        let mut items = FileItems::open(&target, &file.path).await?;
        if let Some(batch) = items.next_batch().await? {
            println!("first item: {:?}", batch.first());
        }
    }
    Ok(())
}
