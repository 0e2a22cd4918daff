"""What readers see of a snapshot folder while a run writes it, after the run is killed
(SIGKILL) and after it is interrupted (Ctrl-C): the previous snapshot or nothing, never part of
a run. pandas, pyarrow, polars and DuckDB read the folder locally and on S3 (s3s-fs; DuckDB
with httpfs from PyPI, DDBSNAP_DUCKDB_PYTHON), Spark locally (DDBSNAP_SPARK_PYTHON)."""

import datetime
import json
import os
import signal
import subprocess
import sys
import time

import boto3
import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset
import pyarrow.fs
import pytest

import ddbsnap
from conftest import free_port, serve

ITEMS = 2000


def load(endpoint, name, items, start=0):
    """A table `name` holding items start..items of about 200 bytes with an `updated_at`."""
    db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    if start == 0:
        db.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for first in range(start, items, 25):
        batch = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": f"item#{i:06}"},
                        "updated_at": {"S": now},
                        "qty": {"N": str(i)},
                        "note": {"S": "x" * 150},
                    }
                }
            }
            for i in range(first, min(first + 25, items))
        ]
        db.batch_write_item(RequestItems={name: batch})


def start_run(table, to, endpoint, *extra, env=None):
    """A slow `ddbsnap snapshot` (about 30 s, a file closed every second) as a process."""
    argv = [sys.executable, "-m", "ddbsnap", "snapshot", table, "--to", str(to)]
    argv += ["--endpoint-url", endpoint, "--max-rcu", "3", "--segments", "1"]
    argv += ["--checkpoint-every", "1", *extra]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_for_staged_files(listing, files=2, timeout=60):
    """Wait until the run has closed `files` data files (listed by `listing()`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len([n for n in listing() if n.endswith(".parquet")]) >= files:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {files} staged files within {timeout} s: {listing()}")


def rows_seen(read):
    """The rows `read()` returns; 0 when the reader finds no data file (its own error)."""
    try:
        return read()
    except Exception as e:  # each reader has its own "no files" error
        text = str(e).lower()
        assert any(w in text for w in ("no files", "no such file", "not found", "empty", "expected at least")), e
        return 0


class Local:
    """The README's reader lines over a local folder."""

    def __init__(self, folder, pulls=False):
        self.folder = str(folder)
        self.glob = f"{folder}/run=*/*.parquet" if pulls else f"{folder}/*.parquet"

    def counts(self):
        return {
            "pandas": rows_seen(lambda: len(pd.read_parquet(self.folder))),
            "pyarrow": rows_seen(
                lambda: pyarrow.dataset.dataset(self.folder, format="parquet").count_rows()
            ),
            "polars": rows_seen(lambda: pl.read_parquet(self.glob).height),
            "duckdb": rows_seen(
                lambda: duckdb.sql(f"SELECT count(*) FROM read_parquet('{self.glob}')").fetchall()[0][0]
            ),
        }


class S3:
    """The same readers over s3://<folder> (`bucket` or `bucket/prefix`)."""

    def __init__(self, endpoint, folder, polars=True):
        self.endpoint, self.folder, self.polars = endpoint, folder, polars
        self.fs = pyarrow.fs.S3FileSystem(
            access_key="test", secret_key="test", region="us-east-1",
            endpoint_override=endpoint, scheme="http",
        )

    def listing(self):
        selector = pyarrow.fs.FileSelector(self.folder, recursive=True, allow_not_found=True)
        return [info.path for info in self.fs.get_file_info(selector)]

    def counts(self):
        options = {
            "aws_endpoint_url": self.endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
            "aws_access_key_id": "test", "aws_secret_access_key": "test",
        }
        glob = f"s3://{self.folder}/*.parquet"
        counts = {
            "pandas": rows_seen(lambda: len(pd.read_parquet(self.folder, filesystem=self.fs))),
            "pyarrow": rows_seen(
                lambda: pyarrow.dataset.dataset(self.folder, format="parquet", filesystem=self.fs).count_rows()
            ),
            "duckdb": duckdb_s3_rows(self.endpoint, glob),
        }
        if self.polars:
            counts["polars"] = rows_seen(lambda: pl.read_parquet(glob, storage_options=options).height)
        return counts


def duckdb_s3_rows(endpoint, glob):
    """Rows DuckDB with httpfs (from PyPI, in its own venv) reads from `glob` on s3s-fs."""
    script = f"""
import duckdb, duckdb_ext, glob, os, sys
ext = glob.glob(os.path.join(list(duckdb_ext.__path__)[0], "extensions", "*", "*", "httpfs.duckdb_extension"))[0]
con = duckdb.connect(config={{"autoinstall_known_extensions": False}})
con.execute(f"LOAD '{{ext}}'")
con.execute("CREATE SECRET (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
            "ENDPOINT '{endpoint.removeprefix("http://")}', URL_STYLE 'path', USE_SSL false)")
try:
    print(con.sql("SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0])
except duckdb.IOException as e:
    if "No files found" not in str(e):
        raise
    print(0)
"""
    out = subprocess.run(
        [os.environ["DDBSNAP_DUCKDB_PYTHON"], "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.strip().splitlines()[-1])


def spark_rows(folders):
    """Rows Spark (defaults) reads from each local folder, in one session."""
    script = (
        "import json, sys\n"
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
        "counts = []\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        counts.append(spark.read.parquet(folder).count())\n"
        "    except Exception as e:\n"
        "        assert 'UNABLE_TO_INFER_SCHEMA' in str(e) or 'Unable to infer schema' in str(e), e\n"
        "        counts.append(0)\n"
        "print(json.dumps(counts))\n"
    )
    out = subprocess.run(
        [os.environ["DDBSNAP_SPARK_PYTHON"], "-c", script, *map(str, folders)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def nothing(counts):
    return {reader: 0 for reader in counts}


def stop(run, sig):
    os.killpg(run.pid, sig)
    run.wait(timeout=60)
    return run.returncode


def test_readers_see_no_unfinished_snapshot_locally(dynalite, tmp_path):
    load(dynalite, "orders", ITEMS)
    killed, interrupted = tmp_path / "killed", tmp_path / "interrupted"
    staged = lambda folder: [p.name for p in (folder / "_staging").glob("*")]

    run = start_run("orders", killed, dynalite)
    wait_for_staged_files(lambda: staged(killed))
    readers = Local(killed)
    during = readers.counts()
    assert during == nothing(during), f"during the run: {during}"
    assert stop(run, signal.SIGKILL) == -signal.SIGKILL
    after_kill = readers.counts()
    assert after_kill == nothing(after_kill), f"after SIGKILL: {after_kill}"

    run = start_run("orders", interrupted, dynalite)
    wait_for_staged_files(lambda: staged(interrupted))
    assert stop(run, signal.SIGINT) == 130, run.stderr.read()
    after_ctrl_c = Local(interrupted).counts()
    assert after_ctrl_c == nothing(after_ctrl_c), f"after Ctrl-C: {after_ctrl_c}"
    assert spark_rows([killed, interrupted]) == [0, 0]

    # Resumed, each run commits the whole table, and every reader sees all of it.
    for folder in (killed, interrupted):
        ddbsnap.snapshot("orders", str(folder), endpoint_url=dynalite, resume=True, max_rcu=100000)
        counts = Local(folder).counts()
        assert counts == {reader: ITEMS for reader in counts}, counts
        assert not (folder / "_staging").exists()


def test_readers_of_a_folder_of_pulls_see_the_previous_run_locally(dynalite, tmp_path):
    load(dynalite, "orders", ITEMS)
    root = tmp_path / "pulls"
    pull = {"filter_attr": "updated_at", "since": "last", "overlap": "0", "endpoint_url": dynalite}
    ddbsnap.snapshot("orders", str(root), max_rcu=100000, **pull)
    load(dynalite, "orders", ITEMS + 50, start=ITEMS)
    readers = Local(root, pulls=True)
    assert readers.counts() == {reader: ITEMS for reader in readers.counts()}

    run = start_run("orders", root, dynalite, "--filter-attr", "updated_at", "--since", "last", "--overlap", "0")
    wait_for_staged_files(lambda: [p.name for p in root.glob("run=*/_staging/*")])
    during = readers.counts()
    assert during == {reader: ITEMS for reader in during}, f"during the run: {during}"
    assert stop(run, signal.SIGKILL) == -signal.SIGKILL
    after_kill = readers.counts()
    assert after_kill == {reader: ITEMS for reader in after_kill}, f"after SIGKILL: {after_kill}"
    assert spark_rows([root]) == [ITEMS]

    ddbsnap.snapshot("orders", str(root), resume=True, max_rcu=100000, **pull)
    counts = readers.counts()
    assert counts == {reader: ITEMS + 50 for reader in counts}, counts


@pytest.fixture(params=["s3s-fs", "moto"])
def s3_folder(request, tmp_path):
    """An S3 server and the folder a snapshot goes to, as (endpoint, folder, polars). s3s-fs
    answers a GET of a "folder" key (pyarrow's first look at a prefix) and polars' suffix-range
    GETs with a 500, so there the snapshot is a bucket's root and polars reads it on moto."""
    port = free_port()
    if request.param == "s3s-fs":
        (tmp_path / "s3" / "orders").mkdir(parents=True)
        argv = [os.environ["DDBSNAP_S3S_FS"], "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--access-key", "test", "--secret-key", "test", str(tmp_path / "s3")]
    else:
        argv = [os.environ["DDBSNAP_MOTO_SERVER"], "-H", "127.0.0.1", "-p", str(port)]
    proc = serve(argv, port)
    endpoint = f"http://127.0.0.1:{port}"
    if request.param == "moto":
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
    yield (endpoint, "orders", False) if request.param == "s3s-fs" else (endpoint, "lake/orders", True)
    proc.kill()
    proc.wait()


def test_readers_see_no_unfinished_snapshot_on_s3(dynalite, s3_folder):
    endpoint, folder, polars = s3_folder
    load(dynalite, "orders", ITEMS)
    env = {"AWS_ENDPOINT_URL_S3": endpoint}
    readers = S3(endpoint, folder, polars)
    to = f"s3://{folder}"

    run = start_run("orders", to, dynalite, env=env)
    wait_for_staged_files(lambda: [p for p in readers.listing() if "/_staging/" in p])
    during = readers.counts()
    assert during == nothing(during), f"during the run: {during}"
    assert stop(run, signal.SIGKILL) == -signal.SIGKILL
    after_kill = readers.counts()
    assert after_kill == nothing(after_kill), f"after SIGKILL: {after_kill}"

    run = start_run("orders", to, dynalite, "--resume", env=env)
    time.sleep(3)
    assert stop(run, signal.SIGINT) == 130, run.stderr.read()
    after_ctrl_c = readers.counts()
    assert after_ctrl_c == nothing(after_ctrl_c), f"after Ctrl-C: {after_ctrl_c}"

    ddbsnap.snapshot("orders", to, endpoint_url=dynalite, s3_endpoint_url=endpoint, resume=True, max_rcu=100000)
    counts = readers.counts()
    assert counts == {reader: ITEMS for reader in counts}, counts
    assert not [p for p in readers.listing() if "/_staging/" in p]
