"""Starts `kvrun vault serve` on a free loopback port for the compatibility scenario."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest


@pytest.fixture(scope="session")
def vault():
    binary = os.environ.get("KVRUN_BIN", "target/debug/kvrun")
    data_dir = tempfile.mkdtemp(prefix="kvrun-compat-py-")
    process = subprocess.Popen(
        [binary, "vault", "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir],
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stderr.readline().strip()
    prefix = "kvrun local vault listening on "
    assert first.startswith(prefix), first
    url = first[len(prefix):]
    with open(os.path.join(data_dir, "token")) as f:
        token = f.read().strip()
    yield {"url": url, "ca": os.path.join(data_dir, "ca.pem"), "token": token}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    shutil.rmtree(data_dir)
