"""Helpers of scripts/bench-sync: seed the table, write at a steady rate, report latencies.

  bench_sync.py seed ENDPOINT ITEMS
  bench_sync.py write ENDPOINT ITEMS RATE SECONDS      # prints one "pk written_at_ms" per write
  bench_sync.py report TABLE WRITES SUMMARY TIME
"""

import json
import os
import random
import sys
import time

import boto3


def client(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def seed(endpoint, items):
    db = client(endpoint)
    db.create_table(
        TableName="bench",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for start in range(0, items, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i:07d}"}, "written_at": {"N": "0"}, "pad": {"S": "x" * 100}}}}
            for i in range(start, min(items, start + 25))
        ]
        db.batch_write_item(RequestItems={"bench": batch})


def write(endpoint, items, rate, seconds):
    db = client(endpoint)
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        pk = f"k{random.randrange(items):07d}"
        now = int(time.time() * 1000)
        db.put_item(TableName="bench", Item={"pk": {"S": pk}, "written_at": {"N": str(now)}, "pad": {"S": "y" * 100}})
        print(pk, now, flush=True)
        n += 1
        wait = start + n / rate - time.time()
        if wait > 0:
            time.sleep(wait)


def report(table, writes_file, summary_file, time_file):
    import pyarrow.parquet as pq

    writes = {}
    for line in open(writes_file):
        pk, at = line.split()
        writes[(pk, int(at))] = None
    log = os.path.join(table, "_delta_log")
    for name in sorted(f for f in os.listdir(log) if f.endswith(".json")):
        commit_ms = None
        added = []
        for line in open(os.path.join(log, name)):
            action = json.loads(line)
            if "commitInfo" in action:
                commit_ms = action["commitInfo"]["timestamp"]
            if "add" in action:
                added.append(action["add"]["path"])
        for path in added:
            rows = pq.read_table(os.path.join(table, path), columns=["pk", "written_at"]).to_pylist()
            for row in rows:
                key = (row["pk"], int(row["written_at"]))
                if key in writes and writes[key] is None:
                    writes[key] = commit_ms - key[1]
    latencies = sorted(v for v in writes.values() if v is not None)
    missing = sum(1 for v in writes.values() if v is None)
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000
    summary = json.load(open(summary_file))
    stats = {}
    for line in open(time_file):
        key, _, value = line.strip().rpartition(": ")
        stats[key] = value
    cpu = float(stats["User time (seconds)"]) + float(stats["System time (seconds)"])
    records = summary["records"]
    wall = sum(c["seconds"] for c in summary["commits"])
    print(f"writes {len(writes)}, committed {len(latencies)}, never committed {missing}")
    print(f"write-to-commit latency: p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, max {latencies[-1] / 1000:.2f} s")
    print(f"stream records {records} in {len(summary['commits'])} commits; {records / max(wall, 1e-9):.0f} records/s while committing")
    print(f"CPU {cpu:.2f} s in all (load included): {1000 * cpu / max(records, 1) * 1000 / 1000:.1f} ms per 1,000 records")
    print(f"peak RSS {int(stats['Maximum resident set size (kbytes)']) / 1024:.1f} MiB")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "seed":
        seed(sys.argv[2], int(sys.argv[3]))
    elif cmd == "write":
        write(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        report(*sys.argv[2:6])
