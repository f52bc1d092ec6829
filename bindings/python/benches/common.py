"""Shared by the Python benchmarks: a `kvrun vault serve` to measure against."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from contextlib import contextmanager

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def kvrun_binary():
    """KVRUN_BIN, else the release build, else the debug build."""
    for candidate in (os.environ.get("KVRUN_BIN"), os.path.join(ROOT, "target", "release", "kvrun"), os.path.join(ROOT, "target", "debug", "kvrun")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("build kvrun first: cargo build --release")


@contextmanager
def served_vault():
    """`kvrun vault serve` on a free loopback port: {url, ca, token, binary}."""
    binary = kvrun_binary()
    data_dir = tempfile.mkdtemp(prefix="kvrun-bench-")
    process = subprocess.Popen([binary, "vault", "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir], stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline().strip()
        prefix = "kvrun local vault listening on "
        assert first.startswith(prefix), first
        # Keep reading its log, so that a full pipe never stops the vault.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        with open(os.path.join(data_dir, "token")) as f:
            token = f.read().strip()
        yield {"url": first[len(prefix):], "ca": os.path.join(data_dir, "ca.pem"), "token": token, "binary": binary}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
