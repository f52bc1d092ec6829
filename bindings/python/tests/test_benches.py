"""The package's benchmarks measure only a release build of the package: `tests/compat/run`
installs a debug one, whose figures would say nothing of what users install."""

import os
import subprocess
import sys

import pytest
from kvrun import _kvrun

BENCHES = os.path.join(os.path.dirname(__file__), "..", "benches")


@pytest.mark.parametrize("bench", ["get_secret.py", "concurrent_runs.py", "script_runs.py"])
def test_a_bench_refuses_a_debug_build_and_says_how_to_install_the_release_one(bench):
    if _kvrun.BUILD_PROFILE == "release":
        pytest.skip("the installed package is a release build")
    ran = subprocess.run([sys.executable, os.path.join(BENCHES, bench)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 1, ran
    assert "is a debug build" in ran.stderr
    assert "pip install ./bindings/python" in ran.stderr
    assert ran.stdout == ""
