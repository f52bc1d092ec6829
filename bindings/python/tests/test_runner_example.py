"""`examples/runner.py` runs as documented: several jobs at once, each with its own grants."""

import os
import subprocess
import sys

from conftest import ROOT


def test_the_runner_example_prints_each_runs_status_and_audit(tmp_path):
    job = tmp_path / "train-py.wasm"
    componentize = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    subprocess.run(
        [componentize, "-d", os.path.join(ROOT, "wit"), "-w", "training", "componentize",
         "-p", os.path.join(ROOT, "examples", "train-py"), "app", "-o", str(job)],
        check=True, capture_output=True, text=True,
    )
    ran = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "runner.py"), "--python-job", str(job)],
        capture_output=True, text=True, timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    # run, status, stopped by, seconds, audit (which has spaces)
    rows = {row[0]: row for row in (line.split(None, 4) for line in ran.stdout.splitlines()[1:6])}
    assert rows["rust-job"][1] == "0" and rows["rust-job"][4] == "db-password:granted:ok"
    assert rows["python-job"][1] == "0" and rows["python-job"][4] == "db-password:granted:ok"
    assert rows["hostile-ungranted"][4] == "db-password:refused:denied: not granted"
    assert rows["hostile-spin"][1:3] == ["124", "timeout"]
    assert "the kvrun host refused the request (this run may not send it there)" in ran.stdout
    assert "runner-demo-pa55" not in ran.stdout + ran.stderr
    assert "postgres://trainer:***@db.internal" in ran.stdout
