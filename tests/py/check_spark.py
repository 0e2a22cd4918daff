"""Independent check of a ddbsnap snapshot with Spark at its default settings.

Usage: check_spark.py SNAPSHOT_DIR

`spark.read.parquet(dir)` with no options (case-insensitive column names, `_` files skipped, as
on Databricks) must read every row, and every value must equal what pyarrow reads from the same
files (numbers as canonical text, binary as hex, null struct fields dropped).
"""

import json
import pathlib
import sys

import pyarrow.dataset as ds
from pyspark.sql import Row, SparkSession

from check_snapshot import plain


def norm(v):
    """A value as `plain` renders it, from pyarrow's or Spark's Python objects."""
    if isinstance(v, Row):
        v = v.asDict()
    if isinstance(v, bytearray):
        v = bytes(v)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    return plain(v)


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    manifest = json.loads((root / "_manifest.json").read_text())
    want = {
        r["pk"]: norm(r)
        for r in ds.dataset(str(root), format="parquet").to_table().to_pylist()
    }

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("ddbsnap-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(str(root))
    rows = df.collect()
    assert len(rows) == manifest["items_written"], (len(rows), manifest["items_written"])
    got = {r["pk"]: norm(r) for r in rows}
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for pk, row in want.items():
        assert got[pk] == row, (pk, got[pk], row)
    print(f"spark: {len(rows)} rows, {len(df.columns)} columns, equal to pyarrow's")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
