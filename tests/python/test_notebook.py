"""examples/jupyter_notebook.ipynb, executed cell by cell in a real Jupyter kernel against a
dynalite server holding a table shaped like the demo's (scripts/demo --serve)."""

import os
import pathlib

import boto3
import nbclient
import nbformat

NOTEBOOK = pathlib.Path(__file__).parents[2] / "examples" / "jupyter_notebook.ipynb"


def create_demo_table(endpoint, items):
    db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    db.create_table(
        TableName="demo",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(items):
        db.put_item(
            TableName="demo",
            Item={
                "pk": {"S": f"user#{i % 50:06}"},
                "sk": {"N": str(i)},
                "status": {"S": ["active", "pending", "closed"][i % 3]},
                "amount": {"N": f"{i}.{i % 100:02}"},
                "details": {"M": {"color": {"S": "red"}, "size": {"N": str(i % 40)}}},
            },
        )


def outputs_text(cell):
    text = []
    for out in cell.get("outputs", []):
        if "text" in out:
            text.append(out["text"])
        text.append(out.get("data", {}).get("text/plain", ""))
    return "".join(text)


def test_the_jupyter_notebook_runs_against_the_demo_server(dynalite, tmp_path, monkeypatch):
    create_demo_table(dynalite, 60)
    monkeypatch.setenv("DDBSNAP_DEMO_ENDPOINT", dynalite)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()  # raises CellExecutionError, naming the cell, if any cell fails

    code = [c for c in notebook.cells if c.cell_type == "code"]
    by_source = {c.source.split("\n")[0]: outputs_text(c) for c in code}
    summary = by_source['summary = ddbsnap.snapshot(TABLE, "snapshots/jupyter", overwrite=True, read_fraction=0.25, **AWS)']
    assert "'items': 60" in summary, summary
    assert (tmp_path / "snapshots" / "jupyter" / "_manifest.json").exists()
    grouped = by_source['df = pd.read_parquet(summary["url"])']
    assert all(s in grouped for s in ("active", "pending", "closed")), grouped
    assert "decimal" in by_source['batches = ddbsnap.read(TABLE, columns=["status", "amount"], **AWS)']
    cli = by_source['endpoint = AWS.get("endpoint_url", "")']
    assert "demo" in cli and "pk" in cli, cli
    assert "NotFoundError (exit code 3)" in by_source["try:"]
