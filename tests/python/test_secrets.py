"""The Python API keeps the secret access key and the session token to itself: every function,
verbose, succeeding and failing, shows them in no output (stdout and stderr at the file
descriptor level, progress events included), no exception message and no file it writes."""

import os
import pathlib
import subprocess
import sys

import pyarrow
import pytest

import ddbsnap

from conftest import free_port, serve
from test_package import EVERY_TYPE, create

SECRET = "ddbsnapPythonSecretKeyNeverShown"
TOKEN = "ddbsnapPythonSessionTokenNeverShown"
ROOT = pathlib.Path(__file__).parents[2]


def generate(*what):
    """An export or a change log in AWS's layout, from scripts/gen-export."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-export"), *what],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def everything_under(folder):
    text = []
    for path in sorted(pathlib.Path(folder).rglob("*")):
        if path.is_file():
            text.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(text)


def test_no_function_shows_the_secret_key_or_the_session_token(
    dynalite, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    create(dynalite, "orders", EVERY_TYPE)
    root = tmp_path / "s3"
    (root / "lake").mkdir(parents=True)
    port = free_port()
    s3 = serve(
        [os.environ["DDBSNAP_S3S_FS"], "--host", "127.0.0.1", "--port", str(port)]
        + ["--access-key", "test", "--secret-key", SECRET, str(root)],
        port,
    )
    s3_endpoint = f"http://127.0.0.1:{port}"
    out = tmp_path / "out"
    bucket = tmp_path / "bucket"
    full = generate("full", str(bucket), "300", "2")
    changes = generate("changes", str(bucket), "300", "30", "1")
    local = dict(endpoint_url=dynalite, verbose=True)
    runs = [
        lambda: ddbsnap.snapshot("orders", str(out / "snap"), progress="json", **local),
        lambda: ddbsnap.snapshot(
            "orders", "s3://lake/orders", s3_endpoint_url=s3_endpoint, **local
        ),
        lambda: ddbsnap.describe("orders", **local),
        lambda: pyarrow.table(ddbsnap.read("orders", **local)),
        lambda: ddbsnap.convert_export(full, str(out / "full"), key=["pk", "sk"], verbose=True),
        lambda: ddbsnap.convert_export(
            changes, str(out / "changes"), key=["pk", "sk"], verbose=True
        ),
        lambda: ddbsnap.apply(
            str(out / "changes"), str(out / "full"), str(out / "applied"), verbose=True
        ),
        lambda: pyarrow.table(ddbsnap.read_export(full, key=["pk", "sk"], verbose=True)),
    ]
    failing = [
        lambda: ddbsnap.snapshot("no_such_table", str(out / "missing"), **local),
        lambda: ddbsnap.describe("no_such_table", **local),
        lambda: ddbsnap.snapshot(
            "orders", "s3://lake/refused", s3_endpoint_url="http://127.0.0.1:9", **local
        ),
        lambda: ddbsnap.convert_export(str(bucket), str(out / "bad"), key=["pk"], verbose=True),
    ]
    seen = []
    try:
        for run in runs:
            seen.append(repr(run()))
        for run in failing:
            with pytest.raises(ddbsnap.DdbsnapError) as raised:
                run()
            seen += [str(raised.value), repr(raised.value)]
    finally:
        s3.kill()
        s3.wait()
    captured = capfd.readouterr()
    seen += [captured.out, captured.err, everything_under(tmp_path)]
    text = "\n".join(seen)
    assert (out / "applied" / "_manifest.json").exists()
    assert (root / "lake" / "orders" / "_manifest.json").exists()
    assert '"event":"page"' in text, "progress events were shown"
    assert "no_such_table" in text, "failures were shown"
    assert "ddbsnap.key_schema" in text, "the Parquet metadata was read"
    for secret in (SECRET, TOKEN):
        assert secret not in text
