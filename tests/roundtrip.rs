//! Every DynamoDB type comes back out of the Parquet files exactly, checked value by value with
//! ddbsnap's own reader and with pyarrow as an independent one.

mod common;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ScalarAttributeType};
use common::*;
use ddbsnap::convert::{ColumnType, Item, NumberRepr};
use ddbsnap::sink::reader::read_manifest;

fn nested(depth: usize) -> AV {
    (0..depth).fold(AV::S("bottom".into()), |acc, i| {
        if i % 2 == 0 {
            AV::M(
                [
                    ("level".to_string(), acc),
                    ("i".to_string(), n(&i.to_string())),
                    ("b".to_string(), AV::B(Blob::new(vec![0, i as u8]))),
                ]
                .into(),
            )
        } else {
            AV::L(vec![acc, AV::Null(true)])
        }
    })
}

fn every_type_items() -> Vec<Item> {
    let mut items = vec![
        item(vec![
            ("pk", s("all-types")),
            ("empty", s("")),
            ("n38", n("12345678901234567890123456789012345678")),
            ("n38frac", n("0.12345678901234567890123456789012345678")),
            ("tiny", n("1E-130")),
            ("huge", n("9.9999999999999999999999999999999999999E+125")),
            ("big_int", n("123456789012345678901234567890")),
            ("i64", n("-9223372036854775808")),
            ("price", n("19.99")),
            ("bin", AV::B(Blob::new(vec![0, 1, 0, 255, 0]))),
            ("flag", AV::Bool(true)),
            ("nothing", AV::Null(true)),
            ("ss", AV::Ss(vec!["b".into(), "a".into(), "ünï".into()])),
            (
                "ns",
                AV::Ns(vec!["1".into(), "-0.5".into(), "1E+20".into()]),
            ),
            (
                "bs",
                AV::Bs(vec![Blob::new(vec![0]), Blob::new(vec![0, 0, 1])]),
            ),
            ("deep", nested(20)),
            (
                "map_with_binary",
                AV::M(
                    [
                        ("b".to_string(), AV::B(Blob::new(vec![0, 0]))),
                        ("set".to_string(), AV::Ss(vec!["x".into()])),
                    ]
                    .into(),
                ),
            ),
            (
                "list_mixed",
                AV::L(vec![s("one"), n("2"), AV::Bool(false), AV::Null(true)]),
            ),
            ("名前", s("ユニコード 🚀")),
            ("a.b c", s("dotted and spaced")),
            // Characters Delta does not allow in column names, at the top and in a map.
            (
                "x=y (z)",
                AV::M([("inner field; 1".to_string(), s("forbidden"))].into()),
            ),
            ("a.b_c", s("the name `a.b c` becomes, taken already")),
            ("status", s("reserved word")),
            ("timestamp", n("1762000000")),
            ("mixed", s("a string here")),
        ]),
        item(vec![
            ("pk", s("sparse-1")),
            ("price", n("-0.001")),
            ("mixed", n("42")),
            ("only_here", AV::M(Default::default())),
            ("empty_list", AV::L(vec![])),
            // Names that differ only in case, at the top level and inside a map.
            ("Status", s("capital")),
            (
                "case_map",
                AV::M([("k".to_string(), s("lower")), ("K".to_string(), s("upper"))].into()),
            ),
        ]),
        item(vec![
            ("pk", s("sparse-2")),
            (
                "mixed",
                AV::M([("nested".to_string(), AV::Bs(vec![Blob::new(vec![9])]))].into()),
            ),
            ("flag", AV::Bool(false)),
            ("deep", AV::Null(true)),
            ("STATUS", n("7")),
        ]),
        item(vec![("pk", s("keys-only"))]),
    ];
    // Items near DynamoDB's 400 KB limit: text and binary, incompressible.
    for i in 0..3u64 {
        let text = random_text(i, 395_000);
        items.push(item(vec![
            ("pk", s(&format!("big-text-{i}"))),
            ("payload", s(&text)),
        ]));
        let bytes = random_bytes(i + 100, 395_000);
        items.push(item(vec![
            ("pk", s(&format!("big-bin-{i}"))),
            ("blob", AV::B(Blob::new(bytes))),
        ]));
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_value_by_value() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "types", None).await;
    put_items(&client, "types", every_type_items()).await;
    let truth = scan_all(&client, "types").await;
    assert_eq!(truth.len(), 10);

    let run = snapshot_local(&db.aws(), "types", |b| b.segments(3)).await;
    let (dir, target) = (run.dir, run.target);
    let summary = run.result.unwrap();
    assert_eq!(summary.items, 10);

    let got = read_snapshot(&target).await;
    assert_same_items(&truth, &got);

    let manifest = read_manifest(&target).await.unwrap();
    let cols = &manifest.schema.columns;
    let first: Vec<&str> = cols.keys().take(1).map(String::as_str).collect();
    assert_eq!(first, ["pk"], "key attributes come first");
    assert_eq!(cols["n38"], ColumnType::N(NumberRepr::Decimal { scale: 0 }));
    assert_eq!(
        cols["n38frac"],
        ColumnType::N(NumberRepr::Decimal { scale: 38 })
    );
    assert_eq!(cols["tiny"], ColumnType::N(NumberRepr::Text));
    assert_eq!(cols["huge"], ColumnType::N(NumberRepr::Text));
    assert_eq!(cols["i64"], ColumnType::N(NumberRepr::Int64));
    assert_eq!(
        cols["price"],
        ColumnType::N(NumberRepr::Decimal { scale: 3 })
    );
    assert_eq!(cols["mixed"], ColumnType::Json);
    assert_eq!(
        cols["only_here"],
        ColumnType::Json,
        "maps that are always empty"
    );
    assert!(cols.contains_key("名前") && cols.contains_key("a.b c"));

    // The key column is non-nullable (REQUIRED in the Parquet file), every other one nullable.
    let arrow = &manifest.schema.arrow;
    for field in arrow.fields() {
        assert_eq!(field.is_nullable(), field.name() != "pk", "{field:?}");
    }
    let file = std::fs::File::open(dir.path().join(&manifest.files[0].path)).unwrap();
    let parquet = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let schema = parquet::file::reader::FileReader::metadata(&parquet)
        .file_metadata()
        .schema_descr_ptr();
    for column in schema.root_schema().get_fields() {
        let required = column.get_basic_info().repetition() == parquet::basic::Repetition::REQUIRED;
        assert_eq!(required, column.name() == "pk", "{}", column.name());
    }

    // Independent reader: pyarrow reads the directory with no options and sees the same values.
    check_with_pyarrow(dir.path(), &truth, &manifest.schema.columns);
    check_with_spark(dir.path());

    // The same table as a Delta table: the `deltalake` package and polars read the same rows
    // (under the attribute names), and its files hold every value exactly.
    let delta = tempfile::tempdir().unwrap();
    let table = delta.path().join("types");
    let args = [
        "snapshot",
        "types",
        "--to",
        table.to_str().unwrap(),
        "--format",
        "delta",
        "--endpoint-url",
        &db.endpoint(),
    ];
    succeeded(&run_ddbsnap_to_end(args.map(String::from).to_vec()).await);
    assert_same_items(&truth, &delta_items(&table, 0).await);
    let schema: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json"))
            .unwrap()
            .lines()
            .find_map(|l| {
                let action: serde_json::Value = serde_json::from_str(l).unwrap();
                action["metaData"]["schemaString"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap()
            .as_str(),
    )
    .unwrap();
    // Every column name is one Delta takes without column mapping, and distinct in any case.
    let mut names = Vec::new();
    collect_names(&schema, &mut names);
    for name in &names {
        assert!(
            !name.contains(ddbsnap::convert::DELTA_FORBIDDEN),
            "{name} is not a valid Delta column name"
        );
    }
    assert!(names.iter().any(|n| n == "x_y__z_") && names.iter().any(|n| n == "inner_field__1"));
}

/// The names of every field in a Delta schema, at every level.
fn collect_names(schema: &serde_json::Value, names: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(o) => {
            if let Some(name) = o.get("name").and_then(|n| n.as_str()) {
                names.push(name.to_owned());
            }
            o.values().for_each(|v| collect_names(v, names));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// Plain JSON rendering shared with tests/py/check_snapshot.py: numbers as canonical text,
/// binary as hex, NULL map entries dropped.
fn plain(v: &AV) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        AV::S(x) | AV::N(x) => J::String(x.clone()),
        AV::B(b) => J::String(hex(b.as_ref())),
        AV::Bool(b) => J::Bool(*b),
        AV::Null(_) => J::Null,
        AV::Ss(x) | AV::Ns(x) => J::Array(x.iter().cloned().map(J::String).collect()),
        AV::Bs(x) => J::Array(x.iter().map(|b| J::String(hex(b.as_ref()))).collect()),
        AV::L(x) => J::Array(x.iter().map(plain).collect()),
        AV::M(m) => J::Object(
            m.iter()
                .filter(|(_, v)| !matches!(v, AV::Null(_)))
                .map(|(k, v)| (k.clone(), plain(v)))
                .collect(),
        ),
        _ => J::Null,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The expected value at a position of column type `ct`: plain values, except where the
/// column holds DynamoDB JSON text (`{"$json": ...}`).
fn expected(ct: &ColumnType, v: &AV) -> serde_json::Value {
    use serde_json::Value as J;
    match (ct, v) {
        (_, AV::Null(_)) => J::Null,
        (ColumnType::Json, v) => serde_json::json!({"$json": serde_json::from_str::<J>(
            &ddbsnap::convert::json::value_to_json(v).unwrap()).unwrap()}),
        (ColumnType::L { element }, AV::L(list)) => {
            J::Array(list.iter().map(|e| expected(element, e)).collect())
        }
        (ColumnType::M { fields }, AV::M(m)) => J::Object(
            m.iter()
                .filter(|(_, v)| !matches!(v, AV::Null(_)))
                .map(|(k, v)| (k.clone(), expected(&fields[k], v)))
                .collect(),
        ),
        (_, v) => plain(v),
    }
}

fn check_with_pyarrow(dir: &std::path::Path, truth: &[Item], cols: &ddbsnap::convert::Columns) {
    let expected: Vec<serde_json::Value> = truth
        .iter()
        .map(|item| {
            serde_json::Value::Object(
                item.iter()
                    .filter(|(_, v)| !matches!(v, AV::Null(_)))
                    .map(|(name, v)| (name.clone(), expected(&cols[name], v)))
                    .collect(),
            )
        })
        .collect();
    // Outside the snapshot, so the readers see only what ddbsnap wrote.
    let scratch = tempfile::tempdir().unwrap();
    let expected_path = scratch.path().join("expected.json");
    std::fs::write(&expected_path, serde_json::to_vec(&expected).unwrap()).unwrap();
    run_python(
        "check_snapshot.py",
        &[dir.as_os_str(), expected_path.as_os_str()],
    );
}

/// Spark with its default settings reads the snapshot, with the same values as pyarrow.
fn check_with_spark(dir: &std::path::Path) {
    run_python("check_spark.py", &[dir.as_os_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_widening_late_in_the_scan_gives_one_schema_in_every_file() {
    let db = Dynalite::start();
    let client = db.client();
    create_table(&client, "late", Some(ScalarAttributeType::N)).await;
    // ~12 MB of 1.2 KB items: more pages than are held back for inference, and several files.
    let items: Vec<Item> = (0..10_000)
        .map(|i| {
            item(vec![
                ("pk", s(&format!("p{}", i % 97))),
                ("sk", n(&i.to_string())),
                ("qty", n(&(i % 1000).to_string())),
                ("text", s(&"x".repeat(1200))),
            ])
        })
        .collect();
    put_items(&client, "late", items).await;
    // The item the scan reaches last gains a new attribute and a fractional number.
    let order = scan_all(&client, "late").await;
    let mut last = order.last().unwrap().clone();
    last.insert("qty".into(), n("0.5"));
    last.insert("late_attr".into(), AV::Ss(vec!["new".into()]));
    put_items(&client, "late", vec![last]).await;
    let truth = scan_all(&client, "late").await;

    let run = snapshot_local(&db.aws(), "late", |b| {
        b.segments(1)
            .target_file_bytes(1 << 20)
            .compression(ddbsnap::sink::Compression::None)
    })
    .await;
    let (dir, target) = (run.dir, run.target);
    let summary = run.result.unwrap();
    assert!(summary.files > 1, "{summary:?}");
    assert!(
        summary.files_rewritten > 0,
        "early files were re-encoded: {summary:?}"
    );
    let got = read_snapshot(&target).await; // asserts every file has the manifest's schema
    assert_same_items(&truth, &got);
    let manifest = read_manifest(&target).await.unwrap();
    assert_eq!(
        manifest.schema.columns["qty"],
        ColumnType::N(NumberRepr::Decimal { scale: 1 })
    );
    let on_disk: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(
        on_disk.len(),
        manifest.files.len(),
        "stale files were removed"
    );
}
