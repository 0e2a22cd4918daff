//! Create a demo table and fill it with realistic items (used by `scripts/demo` and
//! `scripts/bench`).
//!
//! ```sh
//! cargo run --release --example seed -- --endpoint-url http://127.0.0.1:8000 --table demo --items 1000
//! ```
//!
//! Each item: `pk` (S), `sk` (N), an ISO-8601 `updated_at`, an epoch `ts`, `status`, an exact
//! decimal `amount`, a `qty` integer, a boolean, a string set, a small map and a text payload of
//! `--payload-bytes` bytes (~1.15 KB items with the default).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// DynamoDB endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    endpoint_url: String,
    /// Table to create and fill.
    #[arg(long, default_value = "demo")]
    table: String,
    /// Number of items.
    #[arg(long, default_value_t = 1000)]
    items: usize,
    /// Size of the text payload of each item.
    #[arg(long, default_value_t = 800)]
    payload_bytes: usize,
    /// Create the table with this provisioned read (and write) capacity instead of on-demand.
    #[arg(long)]
    provisioned_rcu: Option<i64>,
    /// Parallel BatchWriteItem requests.
    #[arg(long, default_value_t = 8)]
    writers: usize,
}

fn item(i: usize, payload_bytes: usize) -> HashMap<String, AV> {
    let n = |v: String| AV::N(v);
    let s = |v: String| AV::S(v);
    // Pseudo-random words: compresses like text, not like a repeated pattern.
    let mut state = i as u64 + 1;
    let payload: String = (0..payload_bytes)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (state ^ (state >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            match (z >> 40) % 32 {
                0..=4 => ' ',
                k => (b'a' + (k as u8 - 5)) as char,
            }
        })
        .collect();
    let day = 1 + i % 28;
    let mut m = HashMap::new();
    m.insert("pk".into(), s(format!("user#{:06}", i % 5000)));
    m.insert("sk".into(), n(format!("{}", i)));
    m.insert(
        "updated_at".into(),
        s(format!("2026-11-{day:02}T{:02}:{:02}:00Z", i % 24, i % 60)),
    );
    m.insert("ts".into(), n(format!("{}", 1_762_000_000 + i as i64 * 37)));
    m.insert(
        "status".into(),
        s(["active", "pending", "closed"][i % 3].into()),
    );
    m.insert("amount".into(), n(format!("{}.{:02}", i % 10_000, i % 100)));
    m.insert("qty".into(), n(format!("{}", i % 250)));
    m.insert("active".into(), AV::Bool(i.is_multiple_of(2)));
    m.insert(
        "tags".into(),
        AV::Ss(vec![format!("t{}", i % 10), format!("g{}", i % 3)]),
    );
    m.insert(
        "details".into(),
        AV::M(HashMap::from([
            (
                "color".to_string(),
                s(["red", "green", "blue"][i % 3].into()),
            ),
            ("size".to_string(), n(format!("{}", i % 40))),
        ])),
    );
    m.insert("payload".into(), s(payload));
    m
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&args.endpoint_url)
            .build(),
    );
    let mut create = client.create_table().table_name(&args.table);
    create = match args.provisioned_rcu {
        Some(rcu) => create
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(
                aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                    .read_capacity_units(rcu)
                    .write_capacity_units(rcu)
                    .build()?,
            ),
        None => create.billing_mode(BillingMode::PayPerRequest),
    };
    let created = create
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()?,
        )
        .send()
        .await;
    if let Err(e) = created {
        let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&e)
            .unwrap_or_default()
            .to_owned();
        if code != "ResourceInUseException" {
            return Err(e.into());
        }
        eprintln!("table {} exists; adding items", args.table);
    }
    let started = std::time::Instant::now();
    let chunks: Vec<Vec<usize>> = (0..args.items)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(|c| c.to_vec())
        .collect();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let chunks = std::sync::Arc::new(chunks);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.writers.max(1) {
        let (client, table, next, chunks) = (
            client.clone(),
            args.table.clone(),
            next.clone(),
            chunks.clone(),
        );
        let payload = args.payload_bytes;
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else {
                    return Ok::<_, aws_sdk_dynamodb::Error>(());
                };
                let mut requests: Vec<WriteRequest> = chunk
                    .iter()
                    .map(|&j| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(item(j, payload)))
                                    .build()
                                    .expect("item"),
                            )
                            .build()
                    })
                    .collect();
                while !requests.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await?;
                    requests = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    eprintln!(
        "loaded {} items into {} in {:.1} s",
        args.items,
        args.table,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
