"""Fixtures for the Python package's tests: dynalite and moto servers on free loopback ports, and
AWS settings that point nowhere else (dummy credentials, a fixed region)."""

import os
import socket
import subprocess
import time

import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("HOME", str(tmp_path))


def serve(argv, port):
    """Start a server on a loopback port; return its process once the port accepts."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.05)


@pytest.fixture
def dynalite():
    port = free_port()
    proc = serve(["node", os.environ["DDBSNAP_DYNALITE"], "--port", str(port), "--createTableMs", "0"], port)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def moto():
    """A moto server: DynamoDB with DynamoDB Streams."""
    port = free_port()
    proc = serve([os.environ["DDBSNAP_MOTO_SERVER"], "-H", "127.0.0.1", "-p", str(port)], port)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def s3(tmp_path):
    """An s3s-fs server over a fresh folder: (endpoint, root); bucket "lake" exists."""
    root = tmp_path / "s3"
    (root / "lake").mkdir(parents=True)
    port = free_port()
    argv = [os.environ["DDBSNAP_S3S_FS"], "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--access-key", "test", "--secret-key", "test", str(root)]
    proc = serve(argv, port)
    yield f"http://127.0.0.1:{port}", root
    proc.kill()
    proc.wait()
