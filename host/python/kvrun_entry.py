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
importing one ends the run with one line saying so, status 1.
"""

import gc
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import pkgutil
import sys

import azureml.core  # noqa: F401  (for scripts written for the original SDK)
import kvrun  # noqa: F401  (the script's secrets)
from wit_world import exports
from wit_world.imports import exit as wasi_exit

# Standard-library modules left out of the snapshot: side effects on import (`this` prints,
# `antigravity` opens a browser), GUI and interactive tools, the test suite, installers.
_SKIPPED = {
    "__main__", "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
    "ensurepip", "venv", "lib2to3", "pydoc_data", "distutils", "msilib", "winreg", "winsound",
    "_msi", "nt", "msvcrt", "_winapi", "_overlapped", "asyncio.__main__", "sqlite3.__main__",
}

# Top-level packages known to need native extensions, for the message when they are absent.
_NATIVE = {
    "numpy", "pandas", "scipy", "sklearn", "torch", "tensorflow", "jax", "jaxlib", "lightgbm",
    "xgboost", "psycopg2", "pyarrow", "cryptography", "pydantic_core", "orjson", "lxml", "PIL",
    "matplotlib", "h5py", "tokenizers", "safetensors", "onnxruntime", "grpc", "ujson", "yaml",
}

_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")

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

# Every object made so far lives in the snapshot, which each run maps copy-on-write. Moving
# them out of the collector's reach keeps a collection from touching (and so copying) the
# whole snapshot's pages in every run.
gc.freeze()


class NativeExtensionError(ModuleNotFoundError):
    """A module the script imports needs native extensions, which cannot run in the sandbox."""


def _native_file(name: str, path) -> bool:
    """Whether a compiled extension for module `name` lies in the directories `path`."""
    last = name.rpartition(".")[2]
    top = name.split(".")[0]
    for entry in path or sys.path:
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for file in names:
            if file.startswith(last + ".") and file.endswith(_EXTENSION_SUFFIXES):
                return True
        if "." not in name and top in names and os.path.isdir(os.path.join(entry, top)):
            for _root, _dirs, files in os.walk(os.path.join(entry, top)):
                if any(f.endswith(_EXTENSION_SUFFIXES) for f in files):
                    return True
    return False


class _NativeExtensionFinder(importlib.abc.MetaPathFinder):
    """Last on `sys.meta_path`: turns "no module" for a native extension into a clear error."""

    def find_spec(self, fullname, path, target=None):
        top = fullname.split(".")[0]
        if top in _NATIVE or _native_file(fullname, path):
            raise NativeExtensionError(
                f"imports {top!r}, which has native extensions; they do not run in the WebAssembly sandbox",
                name=top,
            )
        return None


def _native_error(error: BaseException):
    """The NativeExtensionError behind `error` (its cause or context), if there is one."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, NativeExtensionError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_script(script: str, search: list) -> int:
    """Runs `script` as `__main__` the way `python SCRIPT` does; returns the exit status."""
    import traceback
    import types

    directory, file_name = os.path.split(script)
    sys.path[:] = [p for p in [directory, *search] if p] + [p for p in sys.path if p not in _BUILD_PATH]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    sys.meta_path.append(_NativeExtensionFinder())
    sys.dont_write_bytecode = True
    if directory:
        os.chdir(directory)
    sys.argv = [file_name, *sys.argv[1:]]
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as f:
            code = compile(f.read(), script, "exec")
        exec(code, main.__dict__)
    except SystemExit as e:
        return _status(e.code)
    except BaseException as e:  # a Python process prints every uncaught exception
        native = _native_error(e)
        if native is not None:
            print(f"kvrun: {file_name} {native.msg}", file=sys.stderr)
        else:
            # From the script's own frames on, as Python shows it.
            traceback.print_exception(type(e), e, e.__traceback__.tb_next or e.__traceback__)
        return 1
    return 0


def _mounted_search_path() -> list:
    """The host's read-only mounts besides the script's directory, in order:
    `/python-path/0`, `/python-path/1`, ... (`--python-path`), then `/site-packages`."""
    found = []
    while os.path.isdir(f"/python-path/{len(found)}"):
        found.append(f"/python-path/{len(found)}")
    if os.path.isdir("/site-packages"):
        found.append("/site-packages")
    return found


class _WholeWrites(io.RawIOBase):
    """A descriptor that writes everything it is given. The runtime's own `sys.stdout` is a
    `TextIOWrapper` over an unbuffered `FileIO`, which drops the rest of a short write: the
    host's stream takes at most a few KiB at a time, so a longer `print` came out cut."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            written = os.write(self._fd, view[done:])
            if written <= 0:
                raise OSError(f"could not write to descriptor {self._fd}")
            done += written
        return done


def _whole_writes(stream, fd: int):
    """`stream` again, over a descriptor that writes everything it is given."""
    return io.TextIOWrapper(_WholeWrites(fd), encoding=stream.encoding, errors=stream.errors,
                            newline="\n", write_through=True)


class Run(exports.Run):
    """Runs the script named by `argv[0]` as `__main__`."""

    def run(self) -> None:
        sys.stdout = sys.__stdout__ = _whole_writes(sys.stdout, 1)
        sys.stderr = sys.__stderr__ = _whole_writes(sys.stderr, 2)
        status = _run_script(sys.argv[0], _mounted_search_path())
        sys.stdout.flush()
        sys.stderr.flush()
        if status:
            wasi_exit.exit_with_code(status)
