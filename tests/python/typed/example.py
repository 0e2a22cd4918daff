"""A typed use of the Python API, checked by mypy --strict against the package's stubs."""

from typing import Any

import ddbsnap
import ddbsnap.spark


def nightly(table: str) -> int:
    summary: ddbsnap.Summary = ddbsnap.snapshot(
        table, f"s3://lake/{table}", read_fraction=0.25, columns=["pk", "status"], format="delta"
    )
    return summary["items"]


def keep_current(table: str) -> float | None:
    try:
        synced = ddbsnap.sync(
            table, f"s3://lake/{table}", changes=f"s3://lake/{table}_changes", on_gap="refresh"
        )
    except ddbsnap.StreamGapError as gap:
        raise SystemExit(gap.exit_code) from gap
    for commit in synced["commits"]:
        delta = commit.get("delta")
        if delta is not None and delta["merge"] is not None:
            print(delta["version"], delta["merge"]["rows_deleted"])
    return synced["lag_seconds"]


def small_table(table: str) -> ddbsnap.ArrowStream:
    # pyarrow.table(...) or polars.DataFrame(...) take it.
    return ddbsnap.read(table, columns=["pk"], max_rcu=100.0)


def tidy(table: str) -> list[str]:
    ddbsnap.optimize(table, file_size=64)
    return ddbsnap.vacuum(table, retain="168h", dry_run=True)["files"]


def on_spark(spark: Any) -> int:
    committed = ddbsnap.spark.snapshot(spark, "orders", "s3://lake/orders", shards=16)
    return len(committed["shards"])
