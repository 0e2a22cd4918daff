"""The README's "Reading a snapshot" lines, exactly as written, against a snapshot of the demo
table: DuckDB, pandas, pyarrow and polars in the installed wheel's venv, Spark with the test
tools' pyspark (DDBSNAP_SPARK_PYTHON). And examples/notebook.py against a server holding the
demo table, with the installed `ddbsnap` on PATH."""

import datetime
import decimal
import os
import pathlib
import re
import subprocess
import sys

import boto3
import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset

import ddbsnap
from test_notebook import create_demo_table

ROOT = pathlib.Path(__file__).parents[2]
ITEMS = 60


def reader_lines(part=0):
    """The code lines of the README section "Reading a snapshot" (part 0) or of its
    subsection "A folder of pulls" (part 1): (language, line)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Reading a snapshot\n", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### A folder of pulls\n")[part]
    lines = []
    for lang, block in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        for line in block.splitlines():
            code = line.split("#", 1)[0].strip() if lang == "python" else line.strip()
            if code and not code.startswith(("import ", "--")):
                lines.append((lang, code))
    return lines


def rows(result):
    """The number of rows of what a reader returned."""
    if isinstance(result, pd.DataFrame):
        return len(result)
    if isinstance(result, pl.DataFrame):
        return result.height
    if isinstance(result, pl.LazyFrame):
        return result.collect().height
    return result.num_rows  # pyarrow


def run_spark(line, cwd):
    spark_python = os.environ["DDBSNAP_SPARK_PYTHON"]
    script = (
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
        f"print({line}.count())\n"
    )
    out = subprocess.run(
        [spark_python, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return int(out.stdout.strip().splitlines()[-1])


def test_every_reader_line_of_the_readme_reads_the_snapshot(dynalite, tmp_path, monkeypatch):
    create_demo_table(dynalite, ITEMS)
    monkeypatch.chdir(tmp_path)
    ddbsnap.snapshot("demo", "snapshots/demo", endpoint_url=dynalite)
    lines = reader_lines()
    readers = {lang for lang, _ in lines} | {
        name for _, line in lines for name in ("pd", "pl", "pyarrow", "spark") if line.startswith(name)
    }
    assert readers >= {"sql", "pd", "pl", "pyarrow", "spark"}, lines
    for lang, line in lines:
        if lang == "sql":
            result = duckdb.sql(line.rstrip(";")).fetchall()
            assert sum(count for _, count, _ in result) == ITEMS, (line, result)
            assert {status for status, _, _ in result} == {"active", "pending", "closed"}
        elif line.startswith("spark."):
            assert run_spark(line, tmp_path) == ITEMS, line
        else:
            result = eval(line, {"pd": pd, "pl": pl, "pyarrow": pyarrow})
            assert rows(result) == ITEMS, line


def put(db, items):
    for first in range(0, len(items), 25):
        db.batch_write_item(RequestItems={"orders": [{"PutRequest": {"Item": i}} for i in items[first : first + 25]]})


def order(i, qty, **more):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"pk": {"S": f"order#{i:04}"}, "updated_at": {"S": now}, "qty": {"N": qty}, **more}


def test_every_reader_line_of_the_readme_reads_a_folder_of_pulls(dynalite, tmp_path, monkeypatch):
    """Three pulls into one folder; between them `qty` widens from Int64 to Decimal(38, 1) and
    then Decimal(38, 3), and an attribute appears: every line reads every run, exactly."""
    db = boto3.client("dynamodb", endpoint_url=dynalite, region_name="us-east-1")
    db.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.chdir(tmp_path)
    pull = {"filter_attr": "updated_at", "since": "last", "overlap": "0", "endpoint_url": dynalite}
    put(db, [order(i, str(i)) for i in range(40)])
    first = ddbsnap.snapshot("orders", "lake/orders", **pull)
    put(db, [order(i, f"{i}.5") for i in range(40, 70)])
    ddbsnap.snapshot("orders", "lake/orders", **pull)
    put(db, [order(i, f"{i}.125", color={"S": "red"}) for i in range(70, 90)])
    third = ddbsnap.snapshot("orders", "lake/orders", **pull)
    assert third["files_rewritten"] >= 2, third  # the two earlier runs, re-encoded
    runs = sorted(p.name for p in (tmp_path / "lake/orders").iterdir())
    assert len(runs) == 3 and first["url"].endswith(runs[0]), runs
    expected = {
        **{f"order#{i:04}": decimal.Decimal(i) for i in range(40)},
        **{f"order#{i:04}": decimal.Decimal(f"{i}.5") for i in range(40, 70)},
        **{f"order#{i:04}": decimal.Decimal(f"{i}.125") for i in range(70, 90)},
    }
    lines = reader_lines(part=1)
    assert {lang for lang, _ in lines} == {"sql", "python"} and len(lines) == 5, lines
    for lang, line in lines:
        if lang == "sql":
            result = duckdb.sql(line.rstrip(";")).fetchall()
            assert sorted(n for _, n in result) == [20, 30, 40], (line, result)
            table = duckdb.sql(line.split(" GROUP BY")[0].replace("run, count(*)", "*")).df()
        elif line.startswith("spark."):
            assert run_spark(line, tmp_path) == 90, line
            continue
        else:
            table = eval(line, {"pd": pd, "pl": pl, "pyarrow": pyarrow})
        frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
        assert dict(zip(frame["pk"], frame["qty"])) == expected, line
        assert sorted(frame["color"].dropna().unique()) == ["red"], line
        assert frame["run"].nunique() == 3, line


def test_the_notebook_example_runs_against_the_demo_table(dynalite, tmp_path):
    create_demo_table(dynalite, ITEMS)
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), "demo", "snapshots/nb"]
        + ["--endpoint-url", dynalite],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"{ITEMS} items in 1 files" in out.stdout, out.stdout
    assert "'status': 'S'" in out.stdout and "'details': 'M'" in out.stdout, out.stdout
    assert (tmp_path / "snapshots" / "nb" / "_manifest.json").exists()
