//! Test harness: real servers on free loopback ports, started and stopped by the tests.
//!
//! * DynamoDB: dynalite (npm), in memory.
//! * S3: s3s-fs (crates.io 0.14.1) over a temporary directory.
//!
//! Both are installed by `scripts/test` under `.tools/` (or `$DDBSNAP_TOOLS`). A missing server
//! fails the test with a message saying how to install it: tests never skip silently.

#![allow(dead_code)]

pub mod streams;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use ddbsnap::aws::AwsContext;
use ddbsnap::convert::Item;
use ddbsnap::sink::Target;
use ddbsnap::sink::reader::{FileItems, read_manifest};
use futures::TryStreamExt;
use serde_json::Value;

pub const ACCESS_KEY: &str = "AKIDDBSNAPTEST";
pub const SECRET_KEY: &str = "ddbsnap-test-secret";
pub const REGION: &str = "us-east-1";

pub fn tools_dir() -> PathBuf {
    std::env::var_os("DDBSNAP_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {}; run scripts/test (it installs the test servers)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// A dynalite server, killed on drop.
pub struct Dynalite {
    child: Child,
    pub port: u16,
}

impl Dynalite {
    pub fn start() -> Self {
        let cli = require(
            tools_dir().join("node/node_modules/dynalite/cli.js"),
            "dynalite",
        );
        let port = free_port();
        let mut child = Command::new("node")
            .arg(cli)
            .args(["--port", &port.to_string()])
            .args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node (is Node.js installed?)");
        wait_for_port(port, &mut child, "dynalite");
        Dynalite { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn aws(&self) -> AwsContext {
        aws_context(Some(self.endpoint()))
    }

    pub fn client(&self) -> Client {
        self.aws().dynamodb
    }
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An s3s-fs server over a temporary directory, killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

impl S3Server {
    pub fn start(buckets: &[&str]) -> Self {
        let bin = require(tools_dir().join("s3s-fs/bin/s3s-fs"), "s3s-fs");
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir(root.path().join(b)).unwrap();
        }
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        wait_for_port(port, &mut child, "s3s-fs");
        S3Server { child, port, root }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server (PyPI `moto[server]`), for DynamoDB's export control plane; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let bin = require(tools_dir().join("venv/bin/moto_server"), "moto_server");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server");
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create an S3 bucket (moto does not check signatures).
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            conn,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An AWS context with the test credentials.
pub fn aws_context(endpoint: Option<String>) -> AwsContext {
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(REGION))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsContext::from_sdk_config(sdk, endpoint)
}

/// The real `ddbsnap` binary with `args`, the caller's `AWS_*` variables removed and the test
/// credentials set. The binary is the test build's, or the one `DDBSNAP_BIN` names (to run
/// the tests against a release build).
pub fn ddbsnap_command(args: &[String]) -> Command {
    let mut cmd = match std::env::var_os("DDBSNAP_BIN") {
        Some(bin) => Command::new(bin),
        None => Command::new(assert_cmd::cargo::cargo_bin!("ddbsnap")),
    };
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(test_env());
    cmd
}

/// Run the binary (see [`ddbsnap_command`]) off the async workers and collect its output.
pub async fn run_ddbsnap_to_end(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || ddbsnap_command(&args).output().unwrap())
        .await
        .unwrap()
}

/// What one run of the binary did.
pub struct Run {
    pub killed: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run the binary with `args` and `--progress json`; SIGKILL it as soon as `kill_when` says so
/// for a progress event.
pub async fn run_until_killed(
    args: Vec<String>,
    kill_when: impl FnMut(&Value) -> bool + Send + 'static,
) -> Run {
    run_until_signalled(args, "KILL", kill_when).await
}

/// Run `args` to the end with `--progress json`; at the first event `pause_when` accepts, stop
/// the process (SIGSTOP), call `meanwhile`, and let it go on (SIGCONT).
pub async fn run_pausing(
    args: Vec<String>,
    pause_when: impl FnMut(&Value) -> bool + Send + 'static,
    meanwhile: impl FnOnce() + Send + 'static,
) -> Run {
    run_watching(args, pause_when, move |child| {
        send_signal("STOP", child.id());
        meanwhile();
        send_signal("CONT", child.id());
    })
    .await
}

/// [`run_until_killed`] with another signal (`INT` is Ctrl-C); `killed` says it was sent.
pub async fn run_until_signalled(
    args: Vec<String>,
    signal: &'static str,
    kill_when: impl FnMut(&Value) -> bool + Send + 'static,
) -> Run {
    run_watching(args, kill_when, move |child| {
        if signal == "KILL" {
            // At once (no process to start first), and no cleanup of any kind.
            child.kill().unwrap();
        } else {
            send_signal(signal, child.id());
        }
    })
    .await
}

fn send_signal(name: &str, pid: u32) {
    let sent = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -s {name}");
}

/// [`run_until_killed`] with these environment variables set (after the test's own).
pub async fn run_until_killed_with(
    args: Vec<String>,
    env: &[(&str, String)],
    kill_when: impl FnMut(&Value) -> bool + Send + 'static,
) -> Run {
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    run_watching_with(args, env, kill_when, |child| child.kill().unwrap()).await
}

/// Run `args` to the end with `--progress json`, and call `act` on the process at the first
/// progress event `when` accepts; `killed` in the result says it was called.
async fn run_watching(
    args: Vec<String>,
    when: impl FnMut(&Value) -> bool + Send + 'static,
    act: impl FnOnce(&mut Child) + Send + 'static,
) -> Run {
    run_watching_with(args, Vec::new(), when, act).await
}

/// [`run_watching`] with the environment variables `env` set too.
async fn run_watching_with(
    args: Vec<String>,
    env: Vec<(String, String)>,
    mut when: impl FnMut(&Value) -> bool + Send + 'static,
    act: impl FnOnce(&mut Child) + Send + 'static,
) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut cmd = ddbsnap_command(&args);
        cmd.envs(env);
        cmd.args(["--progress", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut act = Some(act);
        let mut stderr = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            if act.is_some()
                && let Ok(event) = serde_json::from_str::<Value>(&line)
                && when(&event)
            {
                (act.take().unwrap())(&mut child);
            }
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let out = child.wait_with_output().unwrap();
        Run {
            killed: act.is_none(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        }
    })
    .await
    .unwrap()
}

/// The names of every object under the target's root.
pub async fn names_under(target: &Target) -> HashSet<String> {
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

/// The stdout of a run of the binary that must have succeeded (else the test fails with its
/// stderr).
pub fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `tests/py/<script>` with the test venv's Python and `args`; fails the test (with the
/// script's output) unless it succeeds, and returns its stdout.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let python = tools_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} missing; run scripts/test",
        python.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .env(
            "DDBSNAP_DUCKDB_PYTHON",
            tools_dir().join("duckdb/bin/python"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Environment for running the real binary against the test servers.
pub fn test_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent/ddbsnap-test".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ddbsnap-test".into(),
        ),
    ]
}

/// Turn point-in-time recovery on for `table` (what exports need).
pub async fn enable_pitr(client: &Client, table: &str) {
    client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The latest version of the Delta table at `dir` (its newest `_delta_log` commit file).
pub fn latest_version(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("_delta_log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap()
}

/// Create an on-demand table with a partition key `pk` (S) and an optional sort key `sk`.
pub async fn create_table(client: &Client, name: &str, sk_type: Option<ScalarAttributeType>) {
    create_table_with(client, name, sk_type, None).await
}

/// Create a table with a partition key `pk` (S), an optional sort key `sk`, on-demand or
/// provisioned at `rcu` read (and write) units.
pub async fn create_table_with(
    client: &Client,
    name: &str,
    sk_type: Option<ScalarAttributeType>,
    rcu: Option<i64>,
) {
    let mut req = client.create_table().table_name(name);
    req = match rcu {
        Some(rcu) => req.provisioned_throughput(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(rcu)
                .write_capacity_units(rcu)
                .build()
                .unwrap(),
        ),
        None => req.billing_mode(BillingMode::PayPerRequest),
    };
    req = req
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    if let Some(t) = sk_type {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(t)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("sk")
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
    }
    req.send().await.unwrap();
    // dynalite makes the table ACTIVE on its next tick; wait for it when it is busy.
    for _ in 0..200 {
        let status = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap()
            .table
            .and_then(|t| t.table_status);
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("table {name} did not become ACTIVE");
}

/// Write items with BatchWriteItem, 25 at a time, several requests in flight.
pub async fn put_items(client: &Client, table: &str, items: Vec<Item>) {
    let chunks: Vec<Vec<Item>> = items.chunks(25).map(|c| c.to_vec()).collect();
    let mut set = tokio::task::JoinSet::new();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    for _ in 0..8 {
        let (client, table, queue) = (client.clone(), table.to_owned(), Arc::clone(&queue));
        set.spawn(async move {
            loop {
                let Some(chunk) = queue.lock().unwrap().pop() else {
                    return;
                };
                let mut requests: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder().set_item(Some(item)).build().unwrap(),
                            )
                            .build()
                    })
                    .collect();
                while !requests.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await
                        .unwrap();
                    requests = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Put `count` items `{pk: "item-<i>", body: <len random letters>}`.
pub async fn put_random_items(client: &Client, table: &str, count: u64, len: usize) {
    let items = (0..count)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("item-{i}"))),
                ("body", s(&random_text(i, len))),
            ])
        })
        .collect();
    put_items(client, table, items).await;
}

/// Every item of the table, read directly with the SDK (the ground truth).
pub async fn scan_all(client: &Client, table: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// Every item of a committed snapshot, decoded from its data files with each file's own schema
/// metadata; also checks the manifest's row counts and that every file has the same schema.
pub async fn read_snapshot(target: &Target) -> Vec<Item> {
    let manifest = read_manifest(target)
        .await
        .expect("snapshot has a manifest");
    let mut items = Vec::new();
    for file in &manifest.files {
        let mut reader = FileItems::open(target, &file.path).await.unwrap();
        assert_eq!(
            reader.columns(),
            &manifest.schema.columns,
            "{} has the snapshot's schema",
            file.path
        );
        let mut rows = 0;
        while let Some(batch) = reader.next_batch().await.unwrap() {
            rows += batch.len() as u64;
            items.extend(batch);
        }
        assert_eq!(rows, file.rows, "rows of {} match the manifest", file.path);
    }
    assert_eq!(items.len() as u64, manifest.totals.items_written);
    items
}

/// What a snapshot is documented to give back for an item: NULL values inside maps and at the
/// top level read as absent (NULL list elements stay), set order is not significant.
pub fn normalize(item: &Item) -> Item {
    item.iter()
        .filter_map(|(k, v)| normalize_value(v).map(|v| (k.clone(), v)))
        .collect()
}

fn normalize_value(v: &AV) -> Option<AV> {
    Some(match v {
        AV::Null(_) => return None,
        AV::M(m) => AV::M(
            m.iter()
                .filter_map(|(k, v)| normalize_value(v).map(|v| (k.clone(), v)))
                .collect(),
        ),
        AV::L(l) => AV::L(
            l.iter()
                .map(|v| normalize_value(v).unwrap_or(AV::Null(true)))
                .collect(),
        ),
        AV::Ss(s) => AV::Ss(sorted(s)),
        AV::Ns(s) => AV::Ns(sorted(s)),
        AV::Bs(s) => {
            let mut s = s.clone();
            s.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            AV::Bs(s)
        }
        other => other.clone(),
    })
}

fn sorted(s: &[String]) -> Vec<String> {
    let mut s = s.to_vec();
    s.sort();
    s
}

/// Key of an item as a string, for exactly-once checks.
pub fn key_of(item: &Item) -> String {
    let part = |name: &str| match item.get(name) {
        Some(AV::S(s)) => format!("S:{s}"),
        Some(AV::N(n)) => format!("N:{n}"),
        Some(AV::B(b)) => format!("B:{:?}", b.as_ref()),
        Some(other) => format!("{other:?}"),
        None => "-".into(),
    };
    format!("{}|{}", part("pk"), part("sk"))
}

/// Assert two item lists hold the same items, each exactly once, value by value.
pub fn assert_same_items(expected: &[Item], got: &[Item]) {
    let index = |items: &[Item]| {
        let mut map: HashMap<String, Item> = HashMap::new();
        for item in items {
            let key = key_of(item);
            assert!(
                map.insert(key.clone(), normalize(item)).is_none(),
                "item {key} appears twice"
            );
        }
        map
    };
    let want = index(expected);
    let have = index(got);
    assert_eq!(want.len(), have.len(), "item count");
    for (key, item) in &want {
        let other = have
            .get(key)
            .unwrap_or_else(|| panic!("item {key} missing from the snapshot"));
        assert_eq!(item, other, "item {key} differs");
    }
}

pub fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

pub fn n(v: &str) -> AV {
    AV::N(v.to_owned())
}

pub fn item(entries: Vec<(&str, AV)>) -> Item {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Deterministic incompressible bytes (splitmix64), different for every seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// Deterministic text of letters that barely compresses.
pub fn random_text(seed: u64, len: usize) -> String {
    random_bytes(seed, len)
        .into_iter()
        .map(|b| char::from(b'!' + b % 90))
        .collect()
}

/// One snapshot run into a new temporary directory.
pub struct LocalRun {
    pub dir: tempfile::TempDir,
    pub target: Target,
    pub result: ddbsnap::Result<ddbsnap::Summary>,
}

/// Snapshot `table` into a new temporary directory, with the builder adjusted by `configure`.
pub async fn snapshot_local(
    aws: &AwsContext,
    table: &str,
    configure: impl FnOnce(ddbsnap::SnapshotConfigBuilder) -> ddbsnap::SnapshotConfigBuilder,
) -> LocalRun {
    let dir = tempfile::tempdir().unwrap();
    let config = configure(ddbsnap::SnapshotConfig::builder(
        table,
        dir.path().to_str().unwrap(),
    ))
    .build()
    .unwrap();
    let target = Target::open(config.destination(), None, &Default::default())
        .await
        .unwrap();
    let result = ddbsnap::Snapshot::new(config)
        .aws(aws.clone())
        .target(target.clone())
        .await;
    LocalRun {
        dir,
        target,
        result,
    }
}

// Delta tables, read by the `deltalake` package and polars (tests/py/read_delta.py).

/// An item as `read_delta.py` prints a row: numbers as canonical text, nulls left out.
pub fn render(v: &AV) -> Value {
    match v {
        aws_sdk_dynamodb::types::AttributeValue::S(s) => serde_json::json!(s),
        // The test's numbers are plain decimals: canonical text drops trailing zeros.
        aws_sdk_dynamodb::types::AttributeValue::N(n) if n.contains('.') => {
            serde_json::json!(n.trim_end_matches('0').trim_end_matches('.'))
        }
        aws_sdk_dynamodb::types::AttributeValue::N(n) => serde_json::json!(n),
        aws_sdk_dynamodb::types::AttributeValue::Bool(b) => serde_json::json!(b),
        aws_sdk_dynamodb::types::AttributeValue::L(l) => {
            Value::Array(l.iter().map(render).collect())
        }
        aws_sdk_dynamodb::types::AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), render(v))).collect())
        }
        other => panic!("not used here: {other:?}"),
    }
}

pub fn rendered(items: &[Item]) -> Vec<Value> {
    let mut rows: Vec<Value> = items
        .iter()
        .map(|it| Value::Object(it.iter().map(|(k, v)| (k.clone(), render(v))).collect()))
        .collect();
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// Version `version` of the table at `dir`, as `deltalake` (and polars) read it.
pub fn read_version(dir: &std::path::Path, version: u64) -> Value {
    let version = version.to_string();
    let out = run_python("read_delta.py", &[dir.as_os_str(), version.as_ref()]);
    serde_json::from_slice(&out).unwrap()
}

pub fn assert_version_holds(dir: &std::path::Path, version: u64, items: &[Item]) {
    let got = read_version(dir, version);
    assert_eq!(got["version"], version, "{got}");
    let rows = got["rows"].as_array().unwrap();
    let want = rendered(items);
    assert_eq!(rows.len(), want.len(), "rows of version {version}");
    for (g, w) in rows.iter().zip(&want) {
        assert_eq!(g, w, "version {version}");
    }
}

/// The items of version `version` of the Delta table at `dir`, exactly: the data files
/// `deltalake` says make up the version, each read back by ddbsnap's reader (DynamoDB types
/// kept). `deltalake` and polars must agree on the rows, and their count must match.
pub async fn delta_items(dir: &std::path::Path, version: u64) -> Vec<Item> {
    let got = read_version(dir, version);
    assert_eq!(got["version"], version, "{got}");
    let mut items = Vec::new();
    for file in got["files"].as_array().unwrap() {
        let path = dir.join(file.as_str().unwrap());
        let folder = path.parent().unwrap();
        let target = Target::from_store(
            Arc::new(object_store::local::LocalFileSystem::new()),
            folder.to_str().unwrap().trim_start_matches('/'),
            folder.display().to_string(),
        );
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut reader = FileItems::open(&target, name).await.unwrap();
        while let Some(batch) = reader.next_batch().await.unwrap() {
            items.extend(batch);
        }
    }
    assert_eq!(items.len(), got["rows"].as_array().unwrap().len());
    items
}

/// An item with every kind of value: exact decimals, a 38-digit number, binary, a set, a map,
/// a list, and ~120 bytes of text.
pub fn mixed_item(i: u64) -> Item {
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
    if i.is_multiple_of(1000) {
        entries.push(("big", n("12345678901234567890123456789012345678")));
    }
    item(entries)
}
