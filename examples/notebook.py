# Notebook-style use: shell out to ddbsnap, then read the snapshot with pandas / pyarrow / Spark.
#
# In Jupyter or Databricks the first step is usually written `!ddbsnap snapshot ...`; here it is
# subprocess so the file runs as a plain script:
#
#   python examples/notebook.py TABLE DESTINATION [--endpoint-url URL]
#
# Needs `ddbsnap` on PATH (`pip install` of a release's wheel or `pip install .` from a checkout;
# `pip install ddbsnap` once it is on PyPI; or `cargo install --locked --path .`) and pyarrow
# + pandas. Against the demo server of `scripts/demo --serve`, add `--endpoint-url URL`.
import json
import subprocess
import sys

table, dest, *extra = sys.argv[1:] or ["demo", "snapshots/demo-notebook"]

# 1. Snapshot. --json prints exactly one JSON object on stdout; errors go to stderr with a
#    documented exit code (docs/exit-codes.md).
run = subprocess.run(
    ["ddbsnap", "snapshot", table, "--to", dest, "--json", "--overwrite", *extra],
    capture_output=True,
    text=True,
)
if run.returncode != 0:
    raise SystemExit(f"ddbsnap failed ({run.returncode}): {run.stderr.strip()}")
summary = json.loads(run.stdout)
print(f"{summary['items']} items in {summary['files']} files, {summary['consumed_rcu']:.0f} RCU")

# 2. Read. pyarrow, pandas and Spark skip files starting with "_" (_manifest.json); DuckDB and
#    polars take the glob <dir>/*.parquet.
import pyarrow.dataset as ds  # noqa: E402

data = ds.dataset(summary["url"], format="parquet").to_table()
print(data.schema)
df = data.to_pandas()
print(df.head())

# Exact numbers: columns inferred as Decimal128 come back as decimal.Decimal, never floats.
# Spark:  spark.read.parquet(summary["url"])   DuckDB:  read_parquet('<dir>/*.parquet')

# 3. The manifest has the original DynamoDB types of every column.
manifest = json.load(open(f"{summary['url']}/_manifest.json"))
print({name: col["type"] for name, col in manifest["schema"]["columns"].items()})
