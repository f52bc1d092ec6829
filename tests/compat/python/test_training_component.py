"""The Python training example (`examples/train-py`), built with componentize-py, run by `kvrun run`.

Training code is often Python: this proves that a component built from Python by the
standard tool runs in the sandbox with only its granted secret, that the value is masked in
its output, that its accesses are audited, and that its own exit status comes through.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VALUE = "py-train-pa55-Zq8"


@pytest.fixture(scope="module")
def job():
    """Builds the example and gives a `kvrun` runner on a fresh embedded vault holding the secret."""
    work = tempfile.TemporaryDirectory(prefix="kvrun-compat-train-py-")
    wasm = os.path.join(work.name, "train-py.wasm")
    componentize = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    subprocess.run(
        [componentize, "-d", os.path.join(ROOT, "wit"), "-w", "training", "componentize",
         "-p", os.path.join(ROOT, "examples", "train-py"), "app", "-o", wasm],
        check=True, capture_output=True, text=True,
    )
    env = dict(os.environ)
    for name in ("KVRUN_VAULT_URL", "KVRUN_ACCESS_TOKEN", "KVRUN_AUTH", "KVRUN_LOG"):
        env.pop(name, None)
    env["KVRUN_DATA_DIR"] = os.path.join(work.name, "data")
    env["KVRUN_CACHE_DIR"] = os.path.join(work.name, "cache")
    binary = os.environ.get("KVRUN_BIN", os.path.join(ROOT, "target", "debug", "kvrun"))

    def kvrun(*args, stdin=""):
        return subprocess.run([binary, *args], input=stdin, env=env, capture_output=True,
                              text=True, timeout=300)

    stored = kvrun("secret", "set", "db-password", stdin=VALUE)
    assert stored.returncode == 0, stored.stderr
    kvrun("secret", "set", "other-secret", stdin="not-for-this-run")
    yield {"wasm": wasm, "kvrun": kvrun, "dir": work.name}
    work.cleanup()


def test_the_granted_secret_is_read_masked_and_audited(job):
    audit = os.path.join(job["dir"], "audit.jsonl")
    data = os.path.join(ROOT, "examples", "data")
    ran = job["kvrun"]("run", job["wasm"], "--secret", "db-password",
                       "--dir", f"{data}::/data:ro", "--audit", audit)
    assert ran.returncode == 0, ran.stderr
    assert "postgres://trainer:***@db.internal:5432/experiments" in ran.stdout
    assert "train.py: fitted y = 2.5021 * x + 0.9823 on 40 rows" in ran.stdout
    assert VALUE not in ran.stdout + ran.stderr
    # Its first run compiles it for tens of seconds: a start and an end line, although stderr
    # is no terminal (a CI log would read silence as a hang).
    lines = ran.stderr.splitlines()
    assert "kvrun: compiling the component for this machine (once; later runs load it from the cache)…" in lines
    assert any(line.startswith("kvrun: compiled the component in ") and line.endswith(" s") for line in lines), lines
    with open(audit) as f:
        records = [json.loads(line) for line in f]
    assert [r["operation"] for r in records] == ["run-start", "get-secret", "run-end"]
    assert [(r["name"], r["granted"], r["outcome"]) for r in records[1:2]] == [("db-password", True, "ok")]


def test_a_secret_not_granted_is_refused_and_the_jobs_status_kept(job):
    ran = job["kvrun"]("run", job["wasm"], "--secret", "db-password", "--", "other-secret")
    assert ran.returncode == 2, ran.stderr
    assert "kvrun: compil" not in ran.stderr, "a cached run prints nothing new"
    assert "was not granted to this run" in ran.stderr
    assert "not-for-this-run" not in ran.stdout + ran.stderr
    record = json.loads(next(line for line in ran.stderr.splitlines() if line.startswith('{') and '"name"' in line))
    assert (record["name"], record["granted"]) == ("other-secret", False)


def test_without_its_data_the_job_says_so_with_its_own_status(job):
    ran = job["kvrun"]("run", job["wasm"], "--secret", "db-password")
    assert ran.returncode == 3, ran.stderr
    assert "mount data with --dir" in ran.stderr
    assert "***" in ran.stdout and VALUE not in ran.stdout
