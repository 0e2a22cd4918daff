# Databricks notebook source
# MAGIC %md
# MAGIC # A DynamoDB table as a Delta table, kept current by a scheduled job
# MAGIC
# MAGIC Install ddbsnap on the cluster (from PyPI, or from a wheel in a Unity Catalog volume when the
# MAGIC cluster has no PyPI access), then refresh the Delta table: the first run copies the whole
# MAGIC table, later runs merge what changed. Schedule this notebook as a job every 15 minutes or
# MAGIC every hour. The cluster's instance profile (or the job's credentials) must allow
# MAGIC `dynamodb:DescribeTable` and `dynamodb:Scan` on the table, and reading and writing the lake
# MAGIC prefix.

# COMMAND ----------

# MAGIC %pip install /Volumes/main/default/wheels/ddbsnap-0.1.0-cp39-abi3-manylinux_2_17_x86_64.whl
# MAGIC # (a release's wheel, or one scripts/wheel built; once ddbsnap is on PyPI: %pip install ddbsnap)

# COMMAND ----------

dbutils.widgets.text("table", "orders")  # noqa: F821 (Databricks globals)
dbutils.widgets.text("lake", "s3://lake/dynamodb/orders")  # noqa: F821
dbutils.widgets.text("region", "eu-west-1")  # noqa: F821
dbutils.widgets.text("timestamp_attribute", "updated_at")  # noqa: F821
table = dbutils.widgets.get("table")  # noqa: F821
lake = dbutils.widgets.get("lake")  # noqa: F821
region = dbutils.widgets.get("region")  # noqa: F821
ts = dbutils.widgets.get("timestamp_attribute")  # noqa: F821

# COMMAND ----------

import ddbsnap

print(ddbsnap.describe(table, region=region))

# COMMAND ----------

# MAGIC %md
# MAGIC The first run (no Delta table at `lake` yet) is a full refresh by Scan, throttled to a quarter
# MAGIC of the table's read capacity. Later runs pull the items changed since the last run by their
# MAGIC timestamp attribute and MERGE them by primary key; once a week a run reads the whole table
# MAGIC again, which removes deleted items (or use incremental exports, which see deletes:
# MAGIC `mode="export", export_to="s3://raw/orders", incremental=True`).

# COMMAND ----------

pull = dict(format="delta", region=region, read_fraction=0.25,
            filter_attr=ts, since="last", refresh_every="7d")
try:
    summary = ddbsnap.snapshot(table, lake, **pull)
except ddbsnap.AlreadyExistsError:
    # The previous run stopped half-way (cluster terminated): finish it first.
    summary = ddbsnap.snapshot(table, lake, resume=True, **pull)
print(summary["delta"], f"{summary['items']} items, {summary['consumed_rcu']:.0f} RCU")

# COMMAND ----------

spark.sql(f"CREATE TABLE IF NOT EXISTS main.default.{table} USING DELTA LOCATION '{lake}'")  # noqa: F821
display(spark.sql(f"DESCRIBE HISTORY main.default.{table}").limit(5))  # noqa: F821
display(spark.table(f"main.default.{table}").limit(10))  # noqa: F821
