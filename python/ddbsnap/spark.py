"""Run ddbsnap on a Spark cluster (Databricks, EMR, local): one Spark task per shard, then one
commit on the driver.

Each task runs one shard (``--shard I/N``) of the run in the executor's Python, with the
executor's AWS credentials: it reads its part of the table (or of the export) at ``1/N`` of the
read budget and writes its own files and record. The driver only plans and commits; it reads no
items. A task Spark retries (a lost executor, a transient error) continues its shard where the
failed attempt stopped, so no item is written twice. Readers see nothing until the commit.

Only ``ddbsnap`` needs to be installed on the executors (``%pip install`` of its wheel in a
Databricks notebook installs it on the whole cluster)::

    import ddbsnap.spark
    ddbsnap.spark.snapshot(spark, "orders", to="s3://lake/orders/2026-12-01", shards=16,
                           read_fraction=0.5)
    ddbsnap.spark.convert_export(spark, "s3://raw/AWSDynamoDB/<id>", to="s3://lake/orders",
                                 shards=64, key=["pk", "sk"], format="delta")

Options are the command line's, as for :func:`ddbsnap.snapshot`. Spark retries a failed task
``spark.task.maxFailures`` times (4 on a cluster; give the master as ``local[N,F]`` to retry
in local mode).
"""

from __future__ import annotations

import datetime as _datetime
import json as _json
from typing import Any

import ddbsnap as _ddbsnap

__all__ = ["snapshot", "convert_export"]

# Options the commit needs to reach the destination (the rest are the shards').
_COMMIT_OPTIONS = (
    "region",
    "profile",
    "role_arn",
    "s3_role_arn",
    "external_id",
    "role_session_name",
    "s3_endpoint_url",
    "s3_region",
)


def snapshot(spark: Any, table: str, to: str, shards: int, **options: Any) -> dict[str, Any]:
    """Snapshot ``table`` to ``to`` in ``shards`` Spark tasks, then commit; returns the commit's
    summary (as ``ddbsnap commit --json`` prints it) with the shards' summaries under
    ``"shards"``. ``segments`` defaults to at least 4 per shard."""
    options.setdefault("segments", max(4 * shards, 4))
    return _split(spark, "snapshot", table, to, shards, options)


def convert_export(
    spark: Any, export: str, to: str, shards: int, **options: Any
) -> dict[str, Any]:
    """Convert the DynamoDB export at ``export`` to ``to`` in ``shards`` Spark tasks (each takes
    every ``shards``-th data file), then commit; returns as :func:`snapshot` does."""
    return _split(spark, "convert-export", export, to, shards, options)


def _split(spark, command, source, to, shards, options):
    if not isinstance(shards, int) or shards < 1:
        raise _ddbsnap.UsageError(f"shards must be a whole number of at least 1, got {shards!r}")
    if options.get("shard") is not None:
        raise _ddbsnap.UsageError("give shards=N; the tasks get their own shard")
    # Shards into a Delta table or an incremental pull share one run= folder: its id is the
    # run's start, chosen here once.
    if options.get("run_id") is None and (
        options.get("format") == "delta" or options.get("filter_attr") is not None
    ):
        now = _datetime.datetime.now(_datetime.timezone.utc).replace(microsecond=0)
        options["run_id"] = now.isoformat().replace("+00:00", "Z")
    task = _ShardTask(command, source, to, shards, options)
    context = getattr(spark, "sparkContext", spark)  # a SparkSession, or its SparkContext
    rdd = context.parallelize(range(shards), shards)
    summaries = [_json.loads(s) for s in rdd.map(task).collect()]
    commit_options = {k: v for k, v in options.items() if k in _COMMIT_OPTIONS and v is not None}
    committed = _ddbsnap.commit(to, shards, run=options.get("run_id"), **commit_options)
    committed["shards"] = sorted(summaries, key=lambda s: s["shard"]["index"])
    return committed


class _ShardTask:
    """What a Spark task runs: one shard, in the executor's Python (Spark pickles it by
    reference to this module, which is why ddbsnap must be installed on the executors)."""

    def __init__(self, command, source, to, shards, options):
        self.command, self.source, self.to = command, source, to
        self.shards, self.options = shards, options

    def __call__(self, index):
        import ddbsnap

        options = dict(self.options, shard=f"{index}/{self.shards}")
        summary = ddbsnap._run(self.command, self.source, "--to", self.to, **options)
        return _json.dumps(summary)
