//! End-to-end tests of the real `ddbsnap` binary: the happy path, and every documented error
//! with its message and exit code — and no `_manifest.json` left behind by a failed run.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use common::*;
use proxy::{Action, Proxy};

/// Run the binary with the test environment plus `env`, off the async workers.
async fn ddbsnap(args: Vec<String>, env: Vec<(&'static str, String)>, clear_aws: bool) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = ddbsnap_command(&args);
        if clear_aws {
            for (k, _) in test_env() {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env);
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `ddbsnap snapshot TABLE --to TO --endpoint-url ENDPOINT EXTRA...` with the test credentials.
async fn snapshot(table: &str, to: impl AsRef<Path>, endpoint: &str, extra: &[&str]) -> Output {
    let to = to.as_ref().to_str().unwrap();
    let mut a = args(&["snapshot", table, "--to", to, "--endpoint-url", endpoint]);
    a.extend(extra.iter().map(|s| s.to_string()));
    ddbsnap(a, vec![], false).await
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One error line with the expected text, the expected exit code, no manifest.
fn assert_fails(o: &Output, code: i32, needle: &str, dir: Option<&Path>) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention '{needle}': {err}"
    );
    // The plan line ("ddbsnap: scanning ...") may come first; the error is one line.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("ddbsnap: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    if let Some(dir) = dir {
        assert!(
            !dir.join("_manifest.json").exists(),
            "no manifest after a failure"
        );
    }
}

async fn demo_table(db: &Dynalite, name: &str, count: usize) {
    let client = db.client();
    create_table(&client, name, Some(ScalarAttributeType::N)).await;
    let items = (0..count)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("p{}", i % 10))),
                ("sk", n(&i.to_string())),
                ("v", s("x")),
            ])
        })
        .collect();
    put_items(&client, name, items).await;
}

/// A table `name` of `count` items: `pk` (`k0`, `k1`, ...) and `body`, `len` characters of
/// incompressible text.
async fn text_table(db: &Dynalite, name: &str, count: u64, len: usize) {
    let client = db.client();
    create_table(&client, name, None).await;
    let items = (0..count)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("k{i}"))),
                ("body", s(&random_text(i, len))),
            ])
        })
        .collect();
    put_items(&client, name, items).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_prints_a_json_summary_and_nothing_else() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 300).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("orders");
    let out = snapshot("orders", &to, &db.endpoint(), &["--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "only the plan, no progress: {err}");
    assert!(
        err.starts_with(
            "ddbsnap: scanning orders in 4 segments (4 at once), reading at most 2000.0 RCU/s \
             (50% of 4000 RCU assumed for an on-demand table"
        ),
        "{err}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["items"], 300);
    assert_eq!(summary["table"], "orders");
    assert_eq!(summary["files"], 1);
    assert!(to.join("_manifest.json").exists());
    assert!(to.join("part-00000.parquet").exists());

    // Text summary, and a second run into the same place refuses without --overwrite.
    let again = snapshot("orders", &to, &db.endpoint(), &[]).await;
    assert_fails(&again, 8, "already holds a committed snapshot", None);
    assert!(again.stderr.ends_with(b"--overwrite to replace it\n"));
    let over = snapshot(
        "orders",
        &to,
        &db.endpoint(),
        &["--overwrite", "--segments", "2"],
    )
    .await;
    assert!(over.status.success(), "{}", stderr(&over));
    let text = String::from_utf8(over.stdout).unwrap();
    assert!(text.contains("300 items in 1 files"), "{text}");
    assert!(text.contains(to.to_str().unwrap()), "{text}");
    assert_eq!(summary["columns_not_found"], serde_json::json!([]));

    // A projection naming an attribute no item has (a typo) runs, and says so.
    let typo = snapshot(
        "orders",
        &to,
        &db.endpoint(),
        &["--overwrite", "--columns", "v,V,statsu", "--json"],
    )
    .await;
    let err = stderr(&typo);
    assert!(typo.status.success(), "{err}");
    assert!(
        err.contains("warning: no item had 'V', 'statsu' given to --columns"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&typo.stdout).unwrap();
    assert_eq!(
        summary["columns_not_found"],
        serde_json::json!(["V", "statsu"])
    );
    assert_eq!(summary["items"], 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_exits_3() {
    let db = Dynalite::start();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("snap");
    let out = snapshot("no_such_table", &to, &db.endpoint(), &[]).await;
    assert_fails(
        &out,
        3,
        "table 'no_such_table' not found in region us-east-1",
        Some(dir.path()),
    );
    assert!(stderr(&out).contains("--region"), "says what to check");
    assert!(!to.exists(), "nothing created at the destination");

    // A name DynamoDB would refuse is a usage error with one line, not its ValidationException.
    let long = "t".repeat(300);
    let out = snapshot(&long, &to, &db.endpoint(), &[]).await;
    assert_fails(
        &out,
        2,
        "(300 characters) is not a DynamoDB table name",
        None,
    );
    assert!(!to.exists(), "nothing created at the destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let out = snapshot("orders", dir.path(), &endpoint, &[]).await;
    assert_fails(
        &out,
        5,
        &format!("cannot reach DynamoDB at {endpoint}"),
        Some(dir.path()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_exit_4() {
    let db = Dynalite::start();
    let dir = tempfile::tempdir().unwrap();
    let out = ddbsnap(
        args(&[
            "snapshot",
            "orders",
            "--to",
            dir.path().to_str().unwrap(),
            "--endpoint-url",
            &db.endpoint(),
        ]),
        vec![
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/ddbsnap".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ddbsnap".into()),
        ],
        true,
    )
    .await;
    assert_fails(&out, 4, "no usable AWS credentials found", Some(dir.path()));
}

/// `--profile` names the credentials to use: a profile that is not in the config files is an
/// error, never a run with the environment's credentials; one that is there is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_profile_exits_4_and_never_falls_back() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 10).await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        "[profile analytics]\nregion = us-east-1\naws_access_key_id = fromprofile\n\
         aws_secret_access_key = fromprofile\n",
    )
    .unwrap();
    let files = |config: &Path| {
        vec![
            ("AWS_CONFIG_FILE", config.to_str().unwrap().to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ddbsnap".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    };
    let run = |profile: &str, to: &Path| {
        args(&[
            "snapshot",
            "orders",
            "--to",
            to.to_str().unwrap(),
            "--endpoint-url",
            &db.endpoint(),
            "--profile",
            profile,
        ])
    };
    // The environment has working credentials (the test ones); they must not be used.
    let to = home.path().join("missing");
    let out = ddbsnap(run("nosuchprofile", &to), files(&config), false).await;
    assert_fails(&out, 4, "profile 'nosuchprofile' is not in", None);
    assert!(
        stderr(&out).contains("there are: analytics"),
        "{}",
        stderr(&out)
    );
    assert!(!to.exists(), "nothing created");

    let to = home.path().join("found");
    let out = ddbsnap(run("analytics", &to), files(&config), true).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(to.join("_manifest.json").exists());
}

/// `--skip-expired` leaves out the items whose TTL attribute (from DescribeTimeToLive) is in
/// the past and counts them; items without it, or with a non-number, stay. Without Time to Live
/// enabled the flag is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_expired_leaves_out_items_past_their_ttl() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "sessions", None).await;
    let now = chrono::Utc::now().timestamp();
    let items: Vec<ddbsnap::convert::Item> = (0..40)
        .map(|i| {
            let mut it = item(vec![("pk", s(&format!("s{i}")))]);
            match i % 4 {
                0 => it.insert("expires".into(), n(&(now - 3600).to_string())),
                1 => it.insert("expires".into(), n(&(now + 86_400).to_string())),
                2 => it.insert("expires".into(), s("never")),
                _ => None,
            };
            it
        })
        .collect();
    put_items(&client, "sessions", items.clone()).await;
    let dir = tempfile::tempdir().unwrap();

    let refused = snapshot(
        "sessions",
        dir.path().join("a"),
        &db.endpoint(),
        &["--skip-expired"],
    )
    .await;
    assert_fails(
        &refused,
        2,
        "Time to Live is DISABLED on table 'sessions'",
        None,
    );

    // dynalite has no Time to Live: the proxy answers DescribeTimeToLive as DynamoDB does for
    // a table whose TTL attribute is `expires`.
    let rule: proxy::Rule = Arc::new(|op, _| match op {
        "DescribeTimeToLive" => Action::Rewrite(Box::new(|_| {
            r#"{"TimeToLiveDescription":{"TimeToLiveStatus":"ENABLED","AttributeName":"expires"}}"#
                .into()
        })),
        _ => Action::Forward,
    });
    let proxy = Proxy::start(db.port, rule).await;
    let to = dir.path().join("b");
    let out = snapshot(
        "sessions",
        &to,
        &proxy.endpoint(),
        &["--skip-expired", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["items_expired"], 10, "{summary}");
    assert_eq!(summary["items"], 30, "{summary}");
    let target = ddbsnap::sink::Target::open(
        &ddbsnap::sink::Destination::parse(to.to_str().unwrap()).unwrap(),
        None,
        &Default::default(),
    )
    .await
    .unwrap();
    let expired = |it: &ddbsnap::convert::Item| matches!(it.get("expires"), Some(AttributeValue::N(t)) if t.parse::<i64>().unwrap() <= now);
    let kept: Vec<_> = items.iter().filter(|it| !expired(it)).cloned().collect();
    assert_same_items(&kept, &read_snapshot(&target).await);
    let manifest = ddbsnap::sink::reader::read_manifest(&target).await.unwrap();
    assert_eq!(manifest.totals.items_expired, 10);
}

/// Every file under `dir`, as text (lossy), concatenated.
fn files_under(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&files_under(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// The secret access key and the session token are used to sign and go nowhere else: with
/// `-v`, in runs of every command that succeed and that fail, they are in no stdout or stderr (progress
/// events included), no file written (manifest, Parquet metadata) and nothing
/// sent to DynamoDB (recorded by a proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_output_file_or_request() {
    const TOKEN: &str = "ddbsnapSessionTokenThatMustNotBeShown";
    let db = Dynalite::start();
    demo_table(&db, "orders", 200).await;
    let sent = Arc::new(std::sync::Mutex::new(String::new()));
    let record = Arc::clone(&sent);
    let rule: proxy::Rule = Arc::new(move |op, body| {
        record.lock().unwrap().push_str(&format!("{op} {body}\n"));
        Action::Forward
    });
    let log = proxy::Log::default();
    let proxy = Proxy::start_logged(db.port, rule, log.clone()).await;
    let endpoint = proxy.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (ok, missing) = (at("ok"), at("missing"));
    let runs = [
        // Succeeds, with every progress event as JSON.
        vec![
            "-v",
            "snapshot",
            "orders",
            "--to",
            &ok,
            "--progress",
            "json",
        ],
        // Fails: no such table, unreachable S3.
        vec!["-v", "snapshot", "no_such_table", "--to", &missing],
        vec!["-v", "describe", "orders", "--json"],
        vec!["-v", "describe", "no_such_table"],
        vec![
            "-v",
            "snapshot",
            "orders",
            "--to",
            "s3://lake/x",
            "--s3-endpoint-url",
            "http://127.0.0.1:9",
        ],
    ];
    // An export and a change log (scripts/gen-export, in AWS's layout) for convert-export and
    // apply.
    let generate = |what: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg("scripts/gen-export")
            .args(what)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let bucket = at("bucket");
    let full = generate(&["full", &bucket, "300", "2"]);
    let changes = generate(&["changes", &bucket, "300", "30", "1"]);
    let (converted, change_log, applied) = (at("full"), at("changes"), at("applied"));
    let bad = at("bad");
    let local_runs = [
        vec![
            "-v",
            "convert-export",
            &full,
            "--to",
            &converted,
            "--key",
            "pk,sk",
        ],
        vec![
            "-v",
            "convert-export",
            &changes,
            "--to",
            &change_log,
            "--key",
            "pk,sk",
        ],
        vec![
            "-v",
            "apply",
            &change_log,
            "--to-snapshot",
            &converted,
            "--out",
            &applied,
        ],
        // Fails: not an export.
        vec!["-v", "convert-export", &bucket, "--to", &bad, "--key", "pk"],
    ];
    let mut seen = String::new();
    let with_endpoint = runs.into_iter().map(|run| {
        let mut a = args(&run);
        a.extend(["--endpoint-url".to_owned(), endpoint.clone()]);
        a
    });
    for a in with_endpoint.chain(local_runs.iter().map(|run| args(run))) {
        let out = ddbsnap(a, vec![("AWS_SESSION_TOKEN", TOKEN.into())], false).await;
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&stderr(&out));
    }
    assert!(
        Path::new(&applied).join("_manifest.json").exists(),
        "the local runs succeeded: {seen}"
    );
    assert!(
        seen.contains("\"event\":\"page\""),
        "progress events were shown: {seen}"
    );
    assert!(
        seen.contains("no_such_table"),
        "failures were shown: {seen}"
    );
    seen.push_str(&files_under(dir.path()));
    assert!(
        seen.contains("ddbsnap.key_schema"),
        "the Parquet metadata was read"
    );
    seen.push_str(&sent.lock().unwrap());
    for request in log.lock().unwrap().iter() {
        seen.push_str(&request.authorization);
        seen.push('\n');
    }
    assert!(
        seen.contains(ACCESS_KEY),
        "the requests were recorded with their signatures"
    );
    for secret in [SECRET_KEY, TOKEN] {
        assert!(!seen.contains(secret), "{secret} was shown or sent");
    }
}

/// The access key ID an `Authorization` header was signed with.
fn signing_key(authorization: &str) -> &str {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
}

/// Recording proxies in front of `db` and of a moto server (STS, and S3 with bucket `lake`).
struct Recorded {
    moto: Moto,
    dynamodb: Proxy,
    dynamodb_log: proxy::Log,
    s3: Proxy,
    s3_log: proxy::Log,
}

impl Recorded {
    async fn start(db: &Dynalite) -> Self {
        let moto = Moto::start();
        moto.create_bucket("lake");
        let forward: proxy::Rule = Arc::new(|_, _| Action::Forward);
        let dynamodb_log = proxy::Log::default();
        let dynamodb =
            Proxy::start_logged(db.port, Arc::clone(&forward), dynamodb_log.clone()).await;
        let s3_log = proxy::Log::default();
        let s3 = Proxy::start_logged(moto.port, forward, s3_log.clone()).await;
        Recorded {
            moto,
            dynamodb,
            dynamodb_log,
            s3,
            s3_log,
        }
    }
}

/// `--role-arn` and `--s3-role-arn`: each role is assumed with STS (moto) from the
/// environment's credentials, and its credentials, not the environment's, sign every
/// DynamoDB request and every S3 request respectively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_roles_sign_the_dynamodb_and_s3_requests() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 50).await;
    let Recorded {
        moto,
        dynamodb,
        dynamodb_log,
        s3,
        s3_log,
    } = Recorded::start(&db).await;
    let out = ddbsnap(
        args(&[
            "snapshot",
            "orders",
            "--to",
            "s3://lake/orders",
            "--endpoint-url",
            &dynamodb.endpoint(),
            "--s3-endpoint-url",
            &s3.endpoint(),
            "--role-arn",
            "arn:aws:iam::111111111111:role/table-reader",
            "--s3-role-arn",
            "arn:aws:iam::222222222222:role/lake-writer",
            "--external-id",
            "ddbsnap-test",
            "--role-session-name",
            "nightly",
        ]),
        vec![("AWS_ENDPOINT_URL_STS", moto.endpoint())],
        false,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = |log: &proxy::Log, op: &str| -> std::collections::BTreeSet<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|r| r.op.starts_with(op))
            .map(|r| signing_key(&r.authorization).to_owned())
            .collect()
    };
    let scan = keys(&dynamodb_log, "Scan");
    let describe = keys(&dynamodb_log, "DescribeTable");
    let put = keys(&s3_log, "PUT");
    assert_eq!(scan.len(), 1, "one key signs every Scan: {scan:?}");
    assert_eq!(scan, describe, "and the DescribeTable");
    assert_eq!(put.len(), 1, "one key signs every S3 PUT: {put:?}");
    assert_ne!(scan, put, "the two roles' credentials differ");
    for key in scan.iter().chain(&put) {
        assert!(
            !key.is_empty() && key != ACCESS_KEY,
            "an assumed key: {key}"
        );
    }
}

/// Short-lived credentials from a profile's `credential_process` (as SSO, role and
/// `credential_process` profiles give them): a run longer than their lifetime fetches new ones
/// before they expire, for DynamoDB and for S3, and never signs with an expired key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_credentials_are_refreshed_before_they_expire() {
    const LIFETIME: u64 = 20;
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "slow", None).await;
    // At --max-rcu 1, a Scan every half second (dynalite charges 0.5 RCU for each page of
    // one item): about 25 s for these 50 items.
    let items = (0..50)
        .map(|i| item(vec![("pk", s(&format!("k{i}"))), ("v", s("x"))]))
        .collect();
    put_items(&client, "slow", items).await;
    let Recorded {
        moto: _moto,
        dynamodb,
        dynamodb_log,
        s3,
        s3_log,
    } = Recorded::start(&db).await;

    // Each call hands out a new key that expires LIFETIME seconds later, and records it.
    let dir = tempfile::tempdir().unwrap();
    let issued = dir.path().join("issued");
    let process = dir.path().join("credentials");
    std::fs::write(
        &process,
        format!(
            "#!/bin/sh\n\
             key=AKIDSHORT$(date +%s%N)\n\
             expiry=$(date -u -d '+{LIFETIME} seconds' +%Y-%m-%dT%H:%M:%SZ)\n\
             echo \"$key $(date -u -d \"$expiry\" +%s)\" >> '{}'\n\
             printf '{{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"s\",\
             \"SessionToken\":\"t\",\"Expiration\":\"%s\"}}' \"$key\" \"$expiry\"\n",
            issued.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &process,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile short]\ncredential_process = {}\nregion = us-east-1\n",
            process.display()
        ),
    )
    .unwrap();
    let out = ddbsnap(
        args(&[
            "snapshot",
            "slow",
            "--to",
            "s3://lake/slow",
            "--profile",
            "short",
            "--endpoint-url",
            &dynamodb.endpoint(),
            "--s3-endpoint-url",
            &s3.endpoint(),
            "--max-rcu",
            "1",
        ]),
        vec![
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
        true,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let issued: std::collections::HashMap<String, u64> = std::fs::read_to_string(&issued)
        .unwrap()
        .lines()
        .map(|l| {
            let (key, expiry) = l.split_once(' ').unwrap();
            (key.to_owned(), expiry.parse().unwrap())
        })
        .collect();
    let check = |log: &proxy::Log, service: &str| {
        let log = log.lock().unwrap();
        let first = log.first().unwrap().at;
        let last = log.last().unwrap().at;
        assert!(
            last.duration_since(first).unwrap().as_secs() > LIFETIME,
            "{service} requests outlasted one key"
        );
        let mut keys = std::collections::BTreeSet::new();
        for request in log.iter() {
            let key = signing_key(&request.authorization);
            let expiry = issued
                .get(key)
                .unwrap_or_else(|| panic!("{key} was not issued"));
            let at = request.at.duration_since(std::time::UNIX_EPOCH).unwrap();
            assert!(
                at.as_secs() < *expiry,
                "{service}: {key} was used after it expired"
            );
            keys.insert(key.to_owned());
        }
        assert!(
            keys.len() >= 2,
            "{service} requests were signed with new keys: {keys:?}"
        );
    };
    check(&dynamodb_log, "DynamoDB");
    check(&s3_log, "S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_and_access_denied_exit_4() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 10).await;
    let rule: proxy::Rule = Arc::new(|op, body| {
        match (op, body.contains("locked")) {
        ("DescribeTable", true) => Action::Respond {
            status: 400,
            body: r#"{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: arn:aws:iam::1:user/x is not authorized to perform: dynamodb:DescribeTable"}"#.into(),
        },
        ("DescribeTable", false) => Action::Respond {
            status: 400,
            body: r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#.into(),
        },
        _ => Action::Forward,
    }
    });
    let proxy = Proxy::start(db.port, rule).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_str().unwrap();
    let denied = snapshot("locked", to, &proxy.endpoint(), &[]).await;
    assert_fails(&denied, 4, "access denied", Some(dir.path()));
    assert!(
        stderr(&denied).contains("dynamodb:DescribeTable on table 'locked'"),
        "{}",
        stderr(&denied)
    );
    let rejected = snapshot("orders", to, &proxy.endpoint(), &[]).await;
    assert_fails(
        &rejected,
        4,
        "UnrecognizedClientException",
        Some(dir.path()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_attribute_type_exits_7_and_names_the_attribute() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 20).await;
    // A future DynamoDB type in a Scan response.
    let rule: proxy::Rule = Arc::new(|op, _| match op {
        "Scan" => Action::Rewrite(Box::new(|body| {
            body.replacen(r#""v":{"S":"x"}"#, r#""v":{"QQ":"x"}"#, 1)
        })),
        _ => Action::Forward,
    });
    let proxy = Proxy::start(db.port, rule).await;
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot(
        "orders",
        dir.path(),
        &proxy.endpoint(),
        &["--segments", "1"],
    )
    .await;
    assert_fails(&out, 7, "attribute 'v'", Some(dir.path()));
    assert!(stderr(&out).contains("attribute type"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_destination_url_exits_2() {
    for (to, needle) in [
        ("gs://bucket/x", "unsupported --to URL scheme 'gs://'"),
        ("s3://", "is not a valid S3 bucket name"),
        ("s3://Upper_Case/x", "is not a valid S3 bucket name"),
        // Not a local folder named `s3:`.
        (
            "s3:/bucket/p",
            "looks like a mistyped URL ('s3:' without '//')",
        ),
    ] {
        let out = ddbsnap(args(&["snapshot", "orders", "--to", to]), vec![], false).await;
        assert_fails(&out, 2, needle, None);
    }
    let bad_endpoint = ddbsnap(
        args(&[
            "snapshot",
            "orders",
            "--to",
            "./x",
            "--endpoint-url",
            "localhost:8000",
        ]),
        vec![],
        false,
    )
    .await;
    assert_fails(&bad_endpoint, 2, "invalid endpoint URL", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_destination_exits_6() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let to = file.join("snap");
    let out = snapshot("orders", &to, &db.endpoint(), &[]).await;
    assert_fails(&out, 6, "cannot create the directory", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_with_foreign_files_is_refused() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 5).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = snapshot("orders", dir.path(), &db.endpoint(), extra).await;
        assert_fails(&out, 6, "is not empty (found 'notes.txt'", Some(dir.path()));
    }
    assert!(
        dir.path().join("notes.txt").exists(),
        "never deletes files it did not write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_destination_with_rejected_credentials_exits_6() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 5).await;
    let s3 = S3Server::start(&["snaps"]);
    let ok = snapshot(
        "orders",
        "s3://snaps/orders",
        &db.endpoint(),
        &["--s3-endpoint-url", &s3.endpoint(), "--json"],
    )
    .await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(s3.root.path().join("snaps/orders/_manifest.json").exists());
    let bad = ddbsnap(
        args(&[
            "snapshot",
            "orders",
            "--to",
            "s3://snaps/other",
            "--endpoint-url",
            &db.endpoint(),
            "--s3-endpoint-url",
            &s3.endpoint(),
        ]),
        vec![("AWS_SECRET_ACCESS_KEY", "wrong-secret".into())],
        false,
    )
    .await;
    assert_fails(&bad, 6, "s3://snaps/other", None);
    assert!(!s3.root.path().join("snaps/other/_manifest.json").exists());
}

/// A 2 MiB tmpfs, unmounted on drop (the tests run as root on the CI machines).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a small tmpfs needs root (CAP_SYS_ADMIN)"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_exits_6_and_leaves_nothing() {
    let db = Dynalite::start();
    // ~6 MB of incompressible text: more than the 2 MiB disk.
    text_table(&db, "orders", 3000, 2000).await;
    let disk = SmallDisk::mount();
    let to = disk.0.path().join("snap");
    let out = snapshot("orders", &to, &db.endpoint(), &[]).await;
    assert_fails(&out, 6, "No space left on device", Some(&to));
    assert!(stderr(&out).contains("with --resume to continue"));
    let left: Vec<_> = std::fs::read_dir(&to)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // The aborted upload leaves nothing; the checkpoint saved at the start stays.
    assert_eq!(left, ["_checkpoint.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_without_committing_and_exits_130() {
    let db = Dynalite::start();
    text_table(&db, "orders", 6000, 1000).await;
    // Slow pages (6 of them), so the run is still scanning when the signal comes.
    let rule: proxy::Rule = Arc::new(|op, _| match op {
        "Scan" => Action::Delay(std::time::Duration::from_millis(500)),
        _ => Action::Forward,
    });
    let proxy = Proxy::start(db.port, rule).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("snap");
    let endpoint = proxy.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ddbsnap"));
        cmd.args([
            "snapshot",
            "orders",
            "--to",
            to.to_str().unwrap(),
            "--endpoint-url",
            &endpoint,
        ]);
        cmd.args(["--segments", "1"]);
        cmd.envs(test_env());
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let killed = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: no snapshot was committed"),
        "{err}"
    );
    assert!(err.contains("run the same command with --resume"), "{err}");
    let snap = dir.path().join("snap");
    assert!(!snap.join("_manifest.json").exists());
    // The pages received before the signal were written and checkpointed: the resume starts
    // after them.
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snap.join("_checkpoint.json")).unwrap()).unwrap();
    let kept = checkpoint["totals"]["items_written"].as_u64().unwrap();
    assert!(kept > 0 && kept < 6000, "items kept: {kept}");
    assert_eq!(checkpoint["positions"][0]["state"], "after");
    // A resume must use the options that shaped the files already written.
    let out = snapshot(
        "orders",
        &snap,
        &db.endpoint(),
        &["--resume", "--segments", "3"],
    )
    .await;
    assert_fails(
        &out,
        2,
        "it was made with --segments 1 (got --segments 3)",
        Some(&snap),
    );
    let out = snapshot(
        "orders",
        &snap,
        &db.endpoint(),
        &["--resume", "--numbers", "float64"],
    )
    .await;
    assert_fails(
        &out,
        2,
        "it was made with --compression zstd --zstd-level 1 --numbers exact (this run asks for --compression zstd --zstd-level 1 --numbers float64)",
        Some(&snap),
    );
    demo_table(&db, "other", 3).await;
    let out = snapshot("other", &snap, &db.endpoint(), &["--resume"]).await;
    assert_fails(
        &out,
        2,
        "it is a snapshot of table 'orders', not 'other'",
        Some(&snap),
    );
    let out = snapshot("orders", &snap, &db.endpoint(), &["--resume"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming: 0 of 1 segments finished, 1 files"),
        "{}",
        stderr(&out)
    );
    let target = ddbsnap::sink::Target::open(
        &ddbsnap::sink::Destination::Local(snap.clone()),
        None,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_same_items(
        &scan_all(&db.client(), "orders").await,
        &read_snapshot(&target).await,
    );
    assert!(!snap.join("_checkpoint.json").exists(), "removed on commit");
    // A second resume finds the committed snapshot and does nothing.
    let out = snapshot("orders", &snap, &db.endpoint(), &["--resume"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("was already committed: 6000 items"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_a_checkpoint_exits_2() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = snapshot("orders", dir.path(), &db.endpoint(), &["--resume"]).await;
    assert_fails(
        &out,
        2,
        "has no _checkpoint.json, so there is nothing to resume; run without --resume",
        Some(dir.path()),
    );
    let out = snapshot(
        "orders",
        dir.path(),
        &db.endpoint(),
        &["--resume", "--overwrite"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_s3_endpoint_exits_6() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 5).await;
    let s3 = format!("http://127.0.0.1:{}", free_port());
    let out = snapshot(
        "orders",
        "s3://snaps/orders",
        &db.endpoint(),
        &["--s3-endpoint-url", &s3],
    )
    .await;
    assert_fails(
        &out,
        6,
        "cannot reach the S3 endpoint; check --s3-endpoint-url",
        None,
    );
}

/// `--help` groups the options by purpose, in the order of a run, names the environment
/// variables each AWS option falls back to, and offers no DynamoDB endpoint to the commands
/// that read no table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_is_grouped_and_names_the_environment_fallbacks() {
    async fn help(command: &str) -> String {
        let out = ddbsnap(args(&[command, "--help"]), vec![], false).await;
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }
    let snapshot = help("snapshot").await;
    let headings: Vec<&str> = snapshot
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Arguments:",
            "Options:",
            "Source:",
            "AWS access:",
            "Read budget:",
            "Filters:",
            "Export mode (--mode export):",
            "Output:",
            "Progress:",
            "Shards (one run split over processes):"
        ]
    );
    for env in [
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL)",
    ] {
        assert!(snapshot.contains(env), "{env} in snapshot --help");
    }
    // The options under `heading`, up to the next heading.
    let section = |text: &str, heading: &str| -> String {
        let after = text.split(&format!("\n{heading}:\n")).nth(1).unwrap_or("");
        after
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // sync: the same headings as snapshot (those it has), and its stream's endpoint.
    let sync = help("sync").await;
    let sync_headings: Vec<&str> = sync
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        sync_headings,
        [
            "Arguments:",
            "Options:",
            "Source:",
            "AWS access:",
            "Read budget:",
            "Output:",
            "Progress:"
        ]
    );
    assert!(sync.contains("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"));
    assert!(section(&sync, "Source").contains("--keep-expired"));
    assert!(section(&snapshot, "Progress").contains("--verbose"));
    assert!(section(&snapshot, "Read budget").contains("--max-rcu"));
    // apply reads nothing from DynamoDB; convert-export only DescribeTable, for a Delta
    // table's keys when --key is left out.
    for (command, dynamodb) in [("convert-export", true), ("apply", false)] {
        let text = help(command).await;
        assert_eq!(
            text.contains("--endpoint-url <URL>"),
            dynamodb,
            "{command}: {text}"
        );
        assert!(text.contains("--s3-endpoint-url <URL>"), "{command}");
    }
    assert!(
        help("convert-export")
            .await
            .contains("DynamoDB JSON or Ion")
    );
}

/// The progress bar as a user sees it, in a real terminal (tmux): on a run held to 50 RCU/s,
/// the rate it shows is within 10% of the summary's, the files and bytes move as files close,
/// and no number is negative.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_in_a_terminal_agrees_with_the_summary() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("this test needs tmux (Debian package 'tmux')");
    }
    let db = Dynalite::start();
    // 3,000 items of ~1 KB: about 380 RCU, 7.5 s at 50 RCU/s, in three 1 MiB files.
    text_table(&db, "paced", 3000, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let summary_file = dir.path().join("summary.json");
    let mut command = vec!["env".to_owned()];
    command.extend(test_env().into_iter().map(|(k, v)| format!("{k}={v}")));
    command.push(
        ddbsnap_command(&[])
            .get_program()
            .to_string_lossy()
            .into_owned(),
    );
    command.extend(args(&[
        "snapshot",
        "paced",
        "--to",
        dir.path().join("out").to_str().unwrap(),
        "--endpoint-url",
        &db.endpoint(),
        "--max-rcu",
        "50",
        "--file-size",
        "1",
        "--progress",
        "bar",
        "--json",
    ]));
    let shell = format!(
        "{} > {}; sleep 60",
        command.join(" "),
        summary_file.display()
    );
    let socket = format!("ddbsnap-test-{}", std::process::id());
    let tmux = |a: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(a)
            .output()
            .unwrap()
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "bar",
        "-x",
        "200",
        "-y",
        "10",
        &shell,
    ]);
    assert!(started.status.success(), "{started:?}");
    let mut screens = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::metadata(&summary_file).map_or(true, |m| m.len() == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not finish"
        );
        let pane = tmux(&["capture-pane", "-p", "-t", "bar"]);
        screens.push((
            std::time::Instant::now(),
            String::from_utf8_lossy(&pane.stdout).into_owned(),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tmux(&["kill-server"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_file).unwrap()).unwrap();
    let average = summary["consumed_rcu"].as_f64().unwrap() / summary["seconds"].as_f64().unwrap();
    // "... · 49/50 RCU/s · 234 RCU · 12 pages · 2 files, 2.1 MiB"
    let number_before = |line: &str, unit: &str| -> Option<f64> {
        let end = line.find(unit)?;
        let start = line[..end]
            .trim_end()
            .rfind([' ', '/', '('])
            .map_or(0, |i| i + 1);
        line[start..end].trim().parse().ok()
    };
    let mut rates = Vec::new();
    let mut files = Vec::new();
    for (_, screen) in &screens {
        let Some(line) = screen
            .lines()
            .find(|l| l.contains("RCU/s") && l.contains(" pages"))
        else {
            continue;
        };
        assert!(
            !line.contains(" -") && !line.contains("(-") && !line.contains("/-"),
            "a negative number: {line}"
        );
        let shown = line.split("RCU/s").next().unwrap();
        let rate: f64 = shown
            .rsplit(" · ")
            .next()
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or_else(|| panic!("a rate in {line}"));
        rates.push(rate);
        files.push((
            number_before(line, " files").unwrap_or_else(|| panic!("files in {line}")),
            number_before(line, " MiB").unwrap_or_else(|| panic!("MiB in {line}")),
        ));
    }
    assert!(rates.len() >= 10, "the bar was drawn: {screens:?}");
    // Past the first second, the rate shown is the rate read.
    let steady: Vec<f64> = rates[rates.len() / 4..].to_vec();
    let mean = steady.iter().sum::<f64>() / steady.len() as f64;
    assert!(
        (mean - average).abs() <= 0.1 * average,
        "the bar showed {mean:.0} RCU/s on average ({steady:?}), the summary {average:.0}"
    );
    let distinct: std::collections::BTreeSet<(u64, u64)> = files
        .iter()
        .map(|(f, m)| (*f as u64, (*m * 10.0) as u64))
        .collect();
    assert!(
        distinct.len() >= 3,
        "files and bytes moved while the run went on: {files:?}"
    );
}

/// `convert-export --key` naming an attribute the items do not have, on an export of 6,000
/// items in 4 files: exit 2 naming it, checked on the first item before anything is written,
/// so the target is left as it was and the corrected command runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_export_with_a_wrong_key_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let out = std::process::Command::new("python3")
        .arg("scripts/gen-export")
        .args(["full", bucket.to_str().unwrap(), "6000", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let export = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let to = dir.path().join("converted");
    let convert = |key: &'static str| {
        let args = args(&[
            "convert-export",
            &export,
            "--to",
            to.to_str().unwrap(),
            "--key",
            key,
        ]);
        async move { ddbsnap(args, vec![], false).await }
    };
    let out = convert("pk,sortkey").await;
    assert_fails(
        &out,
        2,
        "--key sortkey: the export's first item has no attribute 'sortkey' (it has amount, meta, \
         payload, pk, sk, status, tags)",
        Some(&to),
    );
    assert!(!to.exists(), "nothing written");
    // A map is no key attribute.
    assert_fails(&convert("pk,meta").await, 2, "--key meta: ", Some(&to));
    assert!(!to.exists(), "nothing written");
    let out = convert("pk,sk").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(to.join("_manifest.json").exists());
}

/// `--mode export` against an endpoint with no point-in-time recovery (dynalite implements
/// neither it nor exports): one line saying what the endpoint lacks and what to do, never the
/// service's empty message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_mode_on_an_endpoint_without_exports_says_so() {
    let db = Dynalite::start();
    demo_table(&db, "orders", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let export = ["--mode", "export", "--export-to", "s3://exports/raw"];
    let out = snapshot("orders", dir.path().join("out"), &db.endpoint(), &export).await;
    assert_fails(
        &out,
        1,
        "does not implement DescribeContinuousBackups; --mode export needs DynamoDB itself",
        None,
    );
    assert!(!stderr(&out).contains("UnknownOperationException: \n"));
}

/// `--version` prints the one version of the crate, the CLI and the wheel, and the commit the
/// binary was built from (this checkout's).
#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = ddbsnap_command(&args(&["--version"])).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim()[..12].to_owned());
    let want = match head {
        Some(commit) => format!("ddbsnap {} ({commit})\n", env!("CARGO_PKG_VERSION")),
        None => format!("ddbsnap {}\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text, want);
}
