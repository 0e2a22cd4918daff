"""`ddbsnap.spark` on a real pyspark (PyPI, local mode with task retries): a table snapshot and
an export conversion in 4 Spark tasks each, then the driver's commit, exact item by item; one
task fails on its first attempt (DynamoDB denies a Scan of its segment, through a proxy) and
Spark's retry continues that shard.

pyspark lives in the test tools' venv (DDBSNAP_SPARK_PYTHON); the installed wheel's `ddbsnap`
package is put on its path, as `%pip install ddbsnap` puts it on every executor."""

import base64
import gzip
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading

import decimal

import boto3
import pyarrow.dataset
import pytest

import ddbsnap
import ddbsnap.spark
from conftest import free_port

ITEMS = 12_000
SHARDS = 4


def item(i):
    return {
        "pk": {"S": f"item-{i:06d}"},
        "price": {"N": f"{i * 7919 % 100000}.{i % 1000:03d}"},
        "raw": {"B": hashlib.sha256(str(i).encode()).digest()[:12]},
        "tags": {"SS": [f"t{i % 7}", "all"]},
        "body": {"S": "x" * 900 + str(i)},
    }


def load(endpoint, name):
    db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    db.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, ITEMS, 25):
        batch = [{"PutRequest": {"Item": item(i)}} for i in range(start, min(start + 25, ITEMS))]
        db.batch_write_item(RequestItems={name: batch})


class DenyOnce(http.server.ThreadingHTTPServer):
    """A proxy to DynamoDB that answers the first Scan of `segment` past its first page with
    AccessDeniedException (an error no retry inside ddbsnap fixes), and forwards the rest."""

    def __init__(self, upstream, segment):
        self.upstream, self.segment, self.denied = upstream, segment, 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), _Forward)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        if self.headers.get("X-Amz-Target", "").endswith(".Scan"):
            request = json.loads(body)
            deny = request.get("Segment") == server.segment and "ExclusiveStartKey" in request
            with server.lock:
                deny = deny and server.denied == 0
                server.denied += deny
            if deny:
                answer = json.dumps({
                    "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
                    "message": "not authorized to perform dynamodb:Scan (injected once)",
                }).encode()
                return self.reply(400, {"Content-Type": "application/x-amz-json-1.0"}, answer)
        host, port = server.upstream.removeprefix("http://").split(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request("POST", self.path, body, headers)
        response = upstream.getresponse()
        data = response.read()
        keep = {"content-type", "x-amzn-requestid", "x-amz-crc32"}
        self.reply(
            response.status, {k: v for k, v in response.getheaders() if k.lower() in keep}, data
        )
        upstream.close()

    def reply(self, status, headers, data):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def run_on_spark(script, tmp_path):
    """Run `script` with pyspark (master local[2], each task tried up to 2 times) and the
    installed ddbsnap; returns the JSON it prints last."""
    packages = tmp_path / "site"
    packages.mkdir()
    (packages / "ddbsnap").symlink_to(os.path.dirname(ddbsnap.__file__))
    prelude = (
        "import json, ddbsnap.spark\n"
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.master('local[2,2]')"
        ".config('spark.ui.enabled', 'false').getOrCreate()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(packages))
    out = subprocess.run(
        [os.environ["DDBSNAP_SPARK_PYTHON"], "-c", prelude + script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def keys_and_prices(folder):
    """(pk, price) of every row a reader with no options sees in `folder`, sorted."""
    rows = pyarrow.dataset.dataset(str(folder), format="parquet").to_table(["pk", "price"])
    return sorted((r["pk"], decimal.Decimal(str(r["price"]))) for r in rows.to_pylist())


def expected():
    return [(f"item-{i:06d}", decimal.Decimal(item(i)["price"]["N"])) for i in range(ITEMS)]


def test_a_table_snapshot_in_spark_tasks_survives_a_failed_task(dynalite, tmp_path):
    load(dynalite, "orders")
    proxy = DenyOnce(dynalite, segment=2)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    to = tmp_path / "orders"
    script = (
        f"result = ddbsnap.spark.snapshot(spark, 'orders', to={str(to)!r}, shards={SHARDS}, "
        f"segments=8, endpoint_url={proxy.endpoint!r}, max_rcu=100000, file_size=1)\n"
        "print(json.dumps(result))\n"
    )
    result = run_on_spark(script, tmp_path)
    proxy.shutdown()
    assert proxy.denied == 1, "the fault was injected once"
    assert result["items"] == ITEMS and "shard" not in result
    shards = result["shards"]
    assert [s["shard"]["index"] for s in shards] == [0, 1, 2, 3]
    assert sum(s["items"] for s in shards) == ITEMS
    retried = [s for s in shards if s["runs"] > 1]
    assert [s["shard"]["index"] for s in retried] == [2], "Spark's retry continued shard 2"
    # Every item once, exact, read with no options; nothing else next to the files.
    assert keys_and_prices(to) == expected()
    assert sorted(p.name for p in to.iterdir() if not p.name.endswith(".parquet")) in (
        ["_manifest.json"],
        ["_manifest.json", "_shards"],
    )


def write_export(bucket_dir, prefix, files):
    """A full DynamoDB JSON export of ITEMS items in `files` data files, in AWS's layout (the
    data files under the export's own data/ folder, listed by manifest-files.json)."""
    export_id = "01764000000000-5f3a9c1e"
    folder = bucket_dir / prefix / "AWSDynamoDB" / export_id
    (folder / "data").mkdir(parents=True)
    listing = []
    for f in range(files):
        lines = [{"Item": item(i)} for i in range(f, ITEMS, files)]
        for line in lines:
            line["Item"]["raw"]["B"] = base64.b64encode(line["Item"]["raw"]["B"]).decode()
        body = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())
        name = f"{f:05d}-{hashlib.md5(body).hexdigest()[:8]}.json.gz"
        (folder / "data" / name).write_bytes(body)
        digest = hashlib.md5(body)
        listing.append(json.dumps({
            "itemCount": len(lines),
            "md5Checksum": base64.b64encode(digest.digest()).decode(),
            "etag": digest.hexdigest(),
            "dataFileS3Key": f"{prefix}/AWSDynamoDB/{export_id}/data/{name}",
        }))
    (folder / "manifest-files.json").write_text("\n".join(listing) + "\n")
    (folder / "manifest-summary.json").write_text(json.dumps({
        "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/orders/export/{export_id}",
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        "s3Bucket": bucket_dir.name,
        "s3Prefix": prefix,
        "exportType": "FULL_EXPORT",
        "exportTime": "2026-11-20T00:00:00.000Z",
        "manifestFilesS3Key": f"{prefix}/AWSDynamoDB/{export_id}/manifest-files.json",
        "itemCount": ITEMS,
        "outputFormat": "DYNAMODB_JSON",
    }))
    return folder


def test_an_export_converted_in_spark_tasks_into_a_delta_table(tmp_path):
    export = write_export(tmp_path / "raw", "exports", files=8)
    to = tmp_path / "lake" / "orders"
    script = (
        f"result = ddbsnap.spark.convert_export(spark, {str(export)!r}, to={str(to)!r}, "
        f"shards={SHARDS}, key=['pk'], format='delta', file_size=1)\n"
        "print(json.dumps(result))\n"
    )
    result = run_on_spark(script, tmp_path)
    assert result["items"] == ITEMS
    assert result["delta"]["version"] == 0
    assert sorted(s["segments"] for s in result["shards"]) == [8] * SHARDS
    assert sum(s["items"] for s in result["shards"]) == ITEMS
    # One run= folder, shared by the shards; the Delta log's version 0 lists their files.
    runs = [p.name for p in to.iterdir() if p.name.startswith("run=")]
    assert len(runs) == 1, runs
    log = (to / "_delta_log" / f"{0:020d}.json").read_text().splitlines()
    added = [json.loads(line)["add"]["path"] for line in log if '"add"' in line]
    assert added and all(p.startswith(runs[0] + "/part-") for p in added), added
    folder = to / runs[0]
    listed = sorted(os.path.basename(p) for p in added)
    assert listed == sorted(p.name for p in folder.glob("*.parquet"))
    assert keys_and_prices(folder) == expected()


def test_spark_helpers_check_their_arguments():
    with pytest.raises(ddbsnap.UsageError):
        ddbsnap.spark.snapshot(None, "orders", to="x", shards=0)
    with pytest.raises(ddbsnap.UsageError):
        ddbsnap.spark.convert_export(None, "x", to="y", shards=2, shard="0/2")
