"""The entry point of kvrun's Python runtime component (`kvrun run SCRIPT.py`).

The component is built once, from kvrun's own files only: componentize-py imports this module
while it builds (its pre-initialisation), and what is imported then lives in the component's
snapshot. So this module imports, at build time, every standard-library module that works
under WASI, and nothing of the user's: no script, no local module, no package.

When the component runs, the host has mounted the script's directory (and each
`--python-path` and `--site-packages` directory) read-only and passes the script's path as
`argv[0]`. `Run.run` then puts those directories on `sys.path`, makes the script's directory
the working directory and runs the script as `__main__`, inside the sandbox: every line of
the user's code, import-time code included, executes with the run's grants, limits, masking
and audit. A module with native extensions (numpy, pandas, torch, ...) cannot be loaded there;
importing one ends the run with one line saying so and naming the scientific runtime
(`--python-runtime scientific`), status 1.
"""

import gc
import importlib
import pkgutil
import sys

import azureml.core  # noqa: F401  (for scripts written for the original SDK)
import kvrun  # noqa: F401  (the script's secrets)
from kvrun import _script
from wit_world import exports
from wit_world.imports import exit as wasi_exit

# Standard-library modules left out of the snapshot: side effects on import (`this` prints,
# `antigravity` opens a browser), GUI and interactive tools, the test suite, installers.
_SKIPPED = {
    "__main__", "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
    "ensurepip", "venv", "lib2to3", "pydoc_data", "distutils", "msilib", "winreg", "winsound",
    "_msi", "nt", "msvcrt", "_winapi", "_overlapped", "asyncio.__main__", "sqlite3.__main__",
}

# The sys.path entries of the build, which do not exist when the component runs.
_BUILD_PATH = list(sys.path)


def _preimport_standard_library() -> int:
    """Imports every standard-library module (and submodule) that imports under WASI."""
    count = 0

    def skipped(name: str) -> bool:
        return any(name == s or name.startswith(s + ".") for s in _SKIPPED)

    def attempt(name: str):
        nonlocal count
        if skipped(name):
            return None
        try:
            module = importlib.import_module(name)
        except BaseException:  # a module that cannot work under WASI raises anything
            return None
        count += 1
        return module

    for name in sorted(sys.stdlib_module_names):
        module = attempt(name)
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, name + ".", onerror=lambda _name: None):
            attempt(info.name)
    return count


PREIMPORTED = _preimport_standard_library()

_script.LACKS = (
    "which kvrun's standard Python runtime does not have (it has no native extensions): run the "
    "script with --python-runtime scientific, kvrun's runtime with numpy, pandas, scipy and scikit-learn"
)

# Every object made so far lives in the snapshot, which each run maps copy-on-write. Moving
# them out of the collector's reach keeps a collection from touching (and so copying) the
# whole snapshot's pages in every run.
gc.freeze()


class Run(exports.Run):
    """Runs the script named by `argv[0]` as `__main__`."""

    def run(self) -> None:
        sys.stdout = sys.__stdout__ = _script.whole_writes(sys.stdout, 1)
        sys.stderr = sys.__stderr__ = _script.whole_writes(sys.stderr, 2)
        status = _script.run_script(sys.argv[0], _script.mounted_search_path(), _BUILD_PATH)
        sys.stdout.flush()
        sys.stderr.flush()
        if status:
            wasi_exit.exit_with_code(status)
