"""The `training` world's entry point for a script run by `kvrun run SCRIPT.py`.

kvrun writes the script's source (`kvrun_script.txt`) and settings (`kvrun_script.json`:
its file name and the packages to bundle) next to this file. componentize-py imports this
module when it builds the component, and only modules imported then exist in the component,
so the script's own imports (found with `ast`) and the named packages are imported here
first; one that cannot be imported fails the build with a `kvrun-build-error:` line. The
script itself runs only when the component runs, as `__main__`; its exit status and any
uncaught exception are passed on as a Python process would (status 1 and the traceback).
"""

import ast
import importlib
import json
import linecache
import os
import sys
import traceback

import azureml.core  # noqa: F401  (bundled for scripts written for the original SDK)
import kvrun  # noqa: F401  (bundled for the script)
from wit_world import exports
from wit_world.imports import exit as wasi_exit

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "kvrun_script.txt"), encoding="utf-8") as _f:
    SOURCE = _f.read()
with open(os.path.join(_HERE, "kvrun_script.json"), encoding="utf-8") as _f:
    _SETTINGS = json.load(_f)
FILENAME = _SETTINGS["filename"]


def _imports(tree) -> list:
    """The absolute module names the script imports, anywhere in it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return sorted(names)


def _native(name: str):
    """A compiled extension of module `name` on the build's path, if there is one."""
    top = name.split(".")[0]
    for entry in sys.path:
        candidate = os.path.join(entry, top)
        if os.path.isdir(candidate):
            for root, _dirs, files in os.walk(candidate):
                for file in files:
                    if file.endswith((".so", ".pyd", ".dylib")):
                        return os.path.join(root, file)
        elif os.path.isdir(entry):
            for file in os.listdir(entry):
                if file.startswith(top + ".") and file.endswith((".so", ".pyd")):
                    return os.path.join(entry, file)
    return None


def _preimport(names) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            native = _native(name)
            if native or name.split(".")[0] in ("numpy", "pandas", "torch", "scipy", "sklearn", "tensorflow"):
                why = "it has native extensions, and native extensions (numpy, pandas, torch, ...) do not run in the WebAssembly sandbox; only pure-Python code can run there"
            else:
                why = f"it is neither in the standard library nor next to the script ({e}); bundle local modules with --python-path DIR and pure-Python packages with --site-packages DIR --package NAME"
            print(f"kvrun-build-error: {FILENAME} imports {name!r}, which cannot be bundled: {why}", file=sys.stderr)
            raise
        except Exception as e:
            print(f"kvrun-build-error: importing {name!r} (imported by {FILENAME}) failed while building: {type(e).__name__}: {e}", file=sys.stderr)
            raise


try:
    _TREE = ast.parse(SOURCE, FILENAME)
except SyntaxError as e:
    print(f"kvrun-build-error: {FILENAME} line {e.lineno}: {e.msg}", file=sys.stderr)
    raise
_preimport([*_imports(_TREE), *_SETTINGS["packages"]])
_CODE = compile(_TREE, FILENAME, "exec")
linecache.cache[FILENAME] = (len(SOURCE), None, SOURCE.splitlines(True), FILENAME)


def _status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class Run(exports.Run):
    """Runs the script as `__main__`."""

    def run(self) -> None:
        sys.argv = [FILENAME, *sys.argv[1:]]
        status = 0
        try:
            exec(_CODE, {"__name__": "__main__", "__file__": FILENAME, "__builtins__": __builtins__})
        except SystemExit as e:
            status = _status(e.code)
        except BaseException:  # a Python process prints every uncaught exception
            traceback.print_exc()
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        if status:
            wasi_exit.exit_with_code(status)
