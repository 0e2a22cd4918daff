"""The installed `ddbsnap` wheel, as a notebook user meets it: the CLI on PATH and through
`python -m`, the Python functions against dynalite, every type read back by pyarrow, polars and
pandas, one exception class per exit code, and Ctrl-C during a long run."""

import decimal
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import boto3
import pyarrow.dataset
import pytest

import ddbsnap


def client(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def create(endpoint, name, items):
    db = client(endpoint)
    db.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for item in items:
        db.put_item(TableName=name, Item=item)


EVERY_TYPE = [
    {
        "pk": {"S": "all"},
        "n38": {"N": "12345678901234567890123456789012345678"},
        "price": {"N": "19.99"},
        "i64": {"N": "-9223372036854775808"},
        "bin": {"B": b"\x00\x01\xff"},
        "flag": {"BOOL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "list": {"L": [{"S": "x"}, {"N": "2"}]},
        "map": {"M": {"k": {"S": "v"}}},
        "Status": {"S": "upper"},
        "status": {"S": "lower"},
    },
    {"pk": {"S": "sparse"}, "price": {"N": "0.5"}},
]


def test_the_cli_runs_from_path_and_as_a_module(dynalite):
    create(dynalite, "orders", [{"pk": {"S": "a"}}])
    # The console script is the venv's; nothing else named ddbsnap is on PATH.
    assert shutil.which("ddbsnap").startswith(os.path.dirname(sys.executable))
    assert shutil.which("cargo") is None, "the wheel runs without Rust"
    for cmd in (["ddbsnap"], [sys.executable, "-m", "ddbsnap"]):
        out = subprocess.run(cmd + ["--version"], capture_output=True, text=True)
        # The wheel's one version, and the commit it was built from (a checkout's).
        assert out.returncode == 0, out
        assert re.fullmatch(rf"ddbsnap {ddbsnap.__version__} \([0-9a-f]{{12}}\)\n", out.stdout), out
        out = subprocess.run(
            cmd + ["describe", "orders", "--endpoint-url", dynalite],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "orders" in out.stdout
        out = subprocess.run(cmd + ["snapshot"], capture_output=True, text=True)
        assert out.returncode == 2 and "--to" in out.stderr


def test_snapshot_and_describe_return_what_json_prints(dynalite, tmp_path):
    create(dynalite, "types", EVERY_TYPE)
    described = ddbsnap.describe("types", endpoint_url=dynalite)
    assert described["table"]["name"] == "types"
    summary = ddbsnap.snapshot(
        "types", str(tmp_path / "snap"), endpoint_url=dynalite, read_fraction=0.5, segments=2
    )
    assert summary["items"] == 2 and summary["segments"] == 2
    assert summary["url"] == str(tmp_path / "snap")

    # pyarrow, polars and pandas read the snapshot with no options and see every value.
    table = pyarrow.dataset.dataset(str(tmp_path / "snap"), format="parquet").to_table()
    rows = {r["pk"]: r for r in table.to_pylist()}
    all_ = rows["all"]
    assert all_["n38"] == decimal.Decimal("12345678901234567890123456789012345678")
    assert all_["price"] == decimal.Decimal("19.99")
    assert all_["i64"] == -9223372036854775808
    assert all_["bin"] == b"\x00\x01\xff"
    assert all_["flag"] is True
    assert sorted(all_["ss"]) == ["a", "b"]
    assert sorted(all_["ns"]) == [1, 2]
    assert all_["map"] == {"k": "v"}
    # Attribute names that differ only in case get distinct columns, names kept in metadata.
    renamed = {f.name: (f.metadata or {}).get(b"ddbsnap.attribute") for f in table.schema}
    assert renamed["Status"] is None and renamed["status__2"] == b"status"
    assert all_["status__2"] == "lower" and all_["Status"] == "upper"
    assert rows["sparse"]["price"] == decimal.Decimal("0.50")

    import pandas
    import polars

    frame = polars.read_parquet(str(tmp_path / "snap" / "*.parquet"))
    assert sorted(frame["pk"].to_list()) == ["all", "sparse"]
    assert pandas.read_parquet(str(tmp_path / "snap")).shape[0] == 2


def test_each_failure_raises_its_class_with_the_one_line_message(dynalite, tmp_path):
    create(dynalite, "orders", [{"pk": {"S": "a"}}])
    cases = [
        (ddbsnap.UsageError, 2, dict(table="orders", read_fraction=7)),
        (ddbsnap.UsageError, 2, dict(table="orders", no_such_option=1)),
        (ddbsnap.NotFoundError, 3, dict(table="missing")),
        (ddbsnap.NetworkError, 5, dict(table="orders", endpoint_url="http://127.0.0.1:1")),
    ]
    for cls, code, kwargs in cases:
        kwargs.setdefault("endpoint_url", dynalite)
        table = kwargs.pop("table")
        with pytest.raises(cls) as raised:
            ddbsnap.snapshot(table, str(tmp_path / "out"), **kwargs)
        assert raised.value.exit_code == code
        assert isinstance(raised.value, ddbsnap.DdbsnapError)
        assert "\n" not in str(raised.value) and str(raised.value)
    ddbsnap.snapshot("orders", str(tmp_path / "done"), endpoint_url=dynalite)
    with pytest.raises(ddbsnap.AlreadyExistsError, match="already holds a committed snapshot"):
        ddbsnap.snapshot("orders", str(tmp_path / "done"), endpoint_url=dynalite)
    with pytest.raises(ddbsnap.DataError):
        empty = tmp_path / "export" / "AWSDynamoDB" / "01700000000000-abcdef12"
        empty.mkdir(parents=True)
        ddbsnap.convert_export(str(empty), str(tmp_path / "converted"), key=["pk"])


def test_ctrl_c_stops_a_long_snapshot_which_resumes(dynalite, tmp_path):
    pad = "x" * 3000
    create(dynalite, "big", [{"pk": {"S": f"k{i}"}, "pad": {"S": pad}} for i in range(300)])
    to = str(tmp_path / "snap")
    # One read capacity unit per second: far longer than the test waits.
    timer = threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ddbsnap.snapshot("big", to, endpoint_url=dynalite, max_rcu=1, segments=1)
    assert time.monotonic() - started < 5, "stopped within a second or so of Ctrl-C"
    assert os.path.exists(os.path.join(to, "_checkpoint.json"))
    assert not os.path.exists(os.path.join(to, "_manifest.json"))
    done = ddbsnap.snapshot("big", to, endpoint_url=dynalite, resume=True, max_rcu=100000)
    assert done["items"] == 300 and done["runs"] == 2


def test_read_hands_arrow_batches_to_pyarrow_polars_and_pandas(dynalite, tmp_path):
    create(dynalite, "types", EVERY_TYPE)
    snapshot = ddbsnap.snapshot("types", str(tmp_path / "snap"), endpoint_url=dynalite)
    assert snapshot["items"] == 2
    on_disk = pyarrow.dataset.dataset(str(tmp_path / "snap"), format="parquet").to_table()

    # The same rows and schema (field metadata included) as the snapshot on disk.
    got = pyarrow.table(ddbsnap.read("types", endpoint_url=dynalite, read_fraction=0.5))
    assert got.schema.equals(on_disk.schema, check_metadata=True)
    key = lambda r: r["pk"]  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(on_disk.to_pylist(), key=key)

    import pandas
    import polars

    frame = polars.DataFrame(ddbsnap.read("types", endpoint_url=dynalite))
    assert sorted(frame["pk"].to_list()) == ["all", "sparse"]
    assert frame.filter(polars.col("pk") == "all")["price"].to_list() == [
        decimal.Decimal("19.99")
    ]
    df = pyarrow.table(ddbsnap.read("types", endpoint_url=dynalite, columns=["price"])).to_pandas()
    assert list(df.columns) == ["pk", "price"] and isinstance(df, pandas.DataFrame)

    # A stream is consumed once, and its temporary folder is gone after; errors are the
    # snapshot's.
    import glob
    import tempfile

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "ddbsnap-read-*")))
    batches = ddbsnap.read("types", endpoint_url=dynalite)
    pyarrow.table(batches)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "ddbsnap-read-*"))) <= before
    with pytest.raises(ValueError, match="already consumed"):
        pyarrow.table(batches)
    with pytest.raises(ddbsnap.NotFoundError):
        ddbsnap.read("missing", endpoint_url=dynalite)


EXPORT_ID = "01700000000000-abcdef12"


def write_export(bucket_dir, prefix="raw", window=None):
    """A full DynamoDB JSON export of two items, in AWS's layout, under bucket_dir/prefix;
    returns its folder. With `window` (from, to), an incremental export of that window
    instead, updating item a, its data file in the prefix's shared data folder."""
    import base64
    import gzip
    import hashlib
    import json

    export_id = EXPORT_ID if window is None else f"01700000086400-day{window[0][8:10]}"
    folder = bucket_dir / prefix / "AWSDynamoDB" / export_id
    data = folder / "data" if window is None else bucket_dir / prefix / "AWSDynamoDB" / "data"
    data.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"Item": {"pk": {"S": "a"}, "n": {"N": "1.50"}, "b": {"B": "AAE="}}},
        {"Item": {"pk": {"S": "b"}, "n": {"N": "12345678901234567890"}}},
    ]
    if window is not None:
        lines = [{
            "Metadata": {"WriteTimestampMicros": {"N": "1764201600000000"}},
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "n": {"N": "2"}},
            "OldImage": {"pk": {"S": "a"}, "n": {"N": "1.50"}, "b": {"B": "AAE="}},
        }, {
            "Metadata": {"WriteTimestampMicros": {"N": "1764201600000001"}},
            "Keys": {"pk": {"S": "b"}},
            "NewImage": {"pk": {"S": "b"}, "n": {"N": "3"}},
            "OldImage": {"pk": {"S": "b"}, "n": {"N": "12345678901234567890"}},
        }]
    body = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())
    name = f"{export_id}.json.gz"
    (data / name).write_bytes(body)
    data_key = data.relative_to(bucket_dir).as_posix()
    digest = hashlib.md5(body)
    (folder / "manifest-files.json").write_text(json.dumps({
        "itemCount": 2,
        "md5Checksum": base64.b64encode(digest.digest()).decode(),
        "etag": digest.hexdigest(),
        "dataFileS3Key": f"{data_key}/{name}",
    }) + "\n")
    summary = {
        "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/t/export/{export_id}",
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        "s3Bucket": bucket_dir.name,
        "s3Prefix": prefix,
        "exportType": "FULL_EXPORT",
        "exportTime": "2026-11-20T00:00:00.000Z",
        "manifestFilesS3Key": f"{prefix}/AWSDynamoDB/{export_id}/manifest-files.json",
        "itemCount": 2,
        "outputFormat": "DYNAMODB_JSON",
    }
    if window is not None:
        del summary["exportTime"]
        summary.update(exportType="INCREMENTAL_EXPORT", outputView="NEW_AND_OLD_IMAGES",
                       exportFromTime=window[0], exportToTime=window[1])
    (folder / "manifest-summary.json").write_text(json.dumps(summary))
    return folder


def test_a_change_set_after_a_gap_raises_out_of_order(tmp_path):
    table = str(tmp_path / "table")
    ddbsnap.convert_export(str(write_export(tmp_path / "raw")), table, key=["pk"], format="delta")
    gapped = write_export(tmp_path / "raw", window=("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z"))
    with pytest.raises(ddbsnap.OutOfOrderError, match="would be lost") as raised:
        ddbsnap.convert_export(str(gapped), table, key=["pk"], format="delta")
    assert raised.value.exit_code == 11 and "\n" not in str(raised.value)
    done = ddbsnap.convert_export(str(gapped), table, key=["pk"], format="delta", on_gap="force")
    assert done["delta"]["version"] == 1 and "would be lost" in done["window_note"]
    again = ddbsnap.convert_export(str(gapped), table, key=["pk"], format="delta")
    assert again["already_applied"] and again["delta"] is None


def assert_export_items(table):
    rows = sorted(table.to_pylist(), key=lambda r: r["pk"])
    assert [r["pk"] for r in rows] == ["a", "b"]
    assert rows[0]["n"] == decimal.Decimal("1.5") and rows[0]["b"] == b"\x00\x01"
    assert rows[1]["n"] == decimal.Decimal("12345678901234567890") and rows[1]["b"] is None


def test_read_export_types_an_existing_export(tmp_path):
    folder = write_export(tmp_path / "raw")
    assert_export_items(pyarrow.table(ddbsnap.read_export(str(folder), key=["pk"])))


def test_s3_destinations_and_exports(dynalite, s3):
    endpoint, root = s3
    create(dynalite, "types", EVERY_TYPE)
    summary = ddbsnap.snapshot(
        "types", "s3://lake/types/2026-12-01", endpoint_url=dynalite, s3_endpoint_url=endpoint
    )
    assert summary["items"] == 2 and summary["url"] == "s3://lake/types/2026-12-01"
    # s3s-fs keeps each bucket as a folder: what landed in S3 is a committed snapshot.
    landed = root / "lake" / "types" / "2026-12-01"
    assert (landed / "_manifest.json").exists()
    on_s3 = pyarrow.dataset.dataset(str(landed), format="parquet").to_table()
    local = pyarrow.table(ddbsnap.read("types", endpoint_url=dynalite))
    key = lambda r: r["pk"]  # noqa: E731
    assert sorted(on_s3.to_pylist(), key=key) == sorted(local.to_pylist(), key=key)

    write_export(root / "lake", prefix="raw/types")
    url = f"s3://lake/raw/types/AWSDynamoDB/{EXPORT_ID}"
    assert_export_items(pyarrow.table(ddbsnap.read_export(url, s3_endpoint_url=endpoint)))
    converted = ddbsnap.convert_export(url, "s3://lake/types/converted", s3_endpoint_url=endpoint)
    assert converted["items"] == 2
    assert_export_items(
        pyarrow.dataset.dataset(str(root / "lake/types/converted"), format="parquet").to_table()
    )
    with pytest.raises(ddbsnap.DestinationError):
        ddbsnap.snapshot(
            "types", "s3://no-such-bucket/x", endpoint_url=dynalite, s3_endpoint_url=endpoint
        )


def test_optimize_and_vacuum_keep_a_delta_table_from_python(dynalite, tmp_path):
    create(dynalite, "kept", [{"pk": {"S": f"k{i}"}, "n": {"N": str(i)}} for i in range(40)])
    table = str(tmp_path / "kept")
    for _ in range(3):
        ddbsnap.snapshot("kept", table, endpoint_url=dynalite, format="delta", segments=3)
        time.sleep(1.1)  # run folders are named to the second
    done = ddbsnap.optimize(table, file_size=1)
    assert done["files_after"] <= done["files_before"], done
    listed = ddbsnap.vacuum(table, dry_run=True)
    assert listed["files"] == [] and listed["dry_run"], listed  # all inside the 7-day window
    with pytest.raises(ddbsnap.UsageError, match="--force"):
        ddbsnap.vacuum(table, retain="0h")
    removed = ddbsnap.vacuum(table, retain="0h", force=True)
    assert len(removed["files"]) >= 2, removed  # at least the first two refreshes' files
    # The table reads whole with delta-rs (the test tools' deltalake; this venv has none).
    count = "import deltalake, sys; print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows)"
    read = subprocess.run(
        [os.environ["DDBSNAP_SPARK_PYTHON"], "-c", count, table], capture_output=True, text=True
    )
    assert read.stdout.split() == ["40"], read.stderr
    assert ddbsnap.vacuum(table)["files"] == []


def test_sync_keeps_a_delta_table_from_the_stream(moto, tmp_path):
    db = client(moto)
    db.create_table(
        TableName="events",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = str(tmp_path / "events")
    with pytest.raises(ddbsnap.UsageError, match="NEW_AND_OLD_IMAGES"):
        ddbsnap.sync("events", table, endpoint_url=moto)
    db.update_table(
        TableName="events",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for i in range(5):
        db.put_item(TableName="events", Item={"pk": {"S": f"e{i}"}, "n": {"N": "1.5"}})
    first = ddbsnap.sync("events", table, endpoint_url=moto)
    assert first["bootstrap"]["items"] == 5 and first["records"] == 5, first
    db.delete_item(TableName="events", Key={"pk": {"S": "e0"}})
    changes = str(tmp_path / "changes")
    second = ddbsnap.sync("events", table, endpoint_url=moto, changes=changes)
    assert second["bootstrap"] is None and second["records"] == 1, second
    assert second["commits"][0]["delta"]["merge"]["rows_deleted"] == 1, second
    # The table of changes: the delete as a row, with its old image, read by deltalake (the
    # test tools' python).
    rows = (
        "import deltalake, sys; t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table(); "
        "print([(r['pk'], r['_op'], str(r['_old']['n'])) for r in t.to_pylist()])"
    )
    read = subprocess.run(
        [os.environ["DDBSNAP_SPARK_PYTHON"], "-c", rows, changes], capture_output=True, text=True
    )
    assert read.stdout.strip() == "[('e0', 'delete', '1.5')]", read.stderr
    assert second["changes_version"] == 0, second
    assert ddbsnap.StreamGapError.exit_code == 12
