"""Running a user's script as `__main__` in either of kvrun's Python runtimes: the search path
from the host's read-only mounts, whole writes to stdout and stderr, the exit status, and one
line for a module the runtime lacks."""

import importlib
import importlib.abc
import io
import os
import sys

# Top-level packages known to need native extensions, for the message when they are absent.
_NATIVE = {
    "numpy", "pandas", "scipy", "sklearn", "torch", "tensorflow", "jax", "jaxlib", "lightgbm",
    "xgboost", "psycopg2", "pyarrow", "cryptography", "pydantic_core", "orjson", "lxml", "PIL",
    "matplotlib", "h5py", "tokenizers", "safetensors", "onnxruntime", "grpc", "ujson", "yaml",
    "statsmodels", "numba", "polars", "transformers",
}

_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")

# What the run's runtime lacks, said after "imports 'NAME', ": set by the entry point.
LACKS = "which has native extensions; they do not run in the WebAssembly sandbox"

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
            raise NativeExtensionError(f"imports {top!r}, {LACKS}", name=top)
        return None


class NoSocketsError(ConnectionRefusedError):
    """The script opened a connection with `urllib.request` or `http.client`, which need
    sockets, which the sandbox does not give."""


_NO_SOCKETS = ("the kvrun sandbox has no sockets, so urllib.request and http.client cannot "
               "connect: make HTTP requests with kvrun.http (kvrun.http.get(url), "
               "kvrun.http.post(url, json=...)), which the run's network policy governs")


def _refuse_sockets() -> None:
    """Makes opening a connection with `http.client` or an `http`/`https`/`ftp` URL with
    `urllib.request` raise NoSocketsError, at use: importing them still works, so libraries
    that only import them load."""
    import http.client
    import urllib.request

    def refuse(*_args, **_kwargs):
        raise NoSocketsError(_NO_SOCKETS)

    http.client.HTTPConnection.connect = refuse
    if hasattr(http.client, "HTTPSConnection"):
        http.client.HTTPSConnection.connect = refuse
    opener_open = urllib.request.OpenerDirector.open

    def open_without_sockets(self, fullurl, *args, **kwargs):
        url = fullurl if isinstance(fullurl, str) else fullurl.full_url
        if url.split(":", 1)[0].lower() in ("http", "https", "ftp"):
            refuse()
        return opener_open(self, fullurl, *args, **kwargs)

    urllib.request.OpenerDirector.open = open_without_sockets


def _behind(error: BaseException, kind: type):
    """The exception of `kind` behind `error` (itself, its cause or context), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
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


def run_script(script: str, search: list, build_path: list) -> int:
    """Runs `script` as `__main__` the way `python SCRIPT` does; returns the exit status."""
    import traceback
    import types

    directory, file_name = os.path.split(script)
    sys.path[:] = [p for p in [directory, *search] if p] + [p for p in sys.path if p not in build_path]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    sys.meta_path.append(_NativeExtensionFinder())
    _refuse_sockets()
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
        native = _behind(e, NativeExtensionError)
        if native is not None:
            print(f"kvrun: {file_name} {native.msg}", file=sys.stderr)
        elif _behind(e, NoSocketsError) is not None:
            print(f"kvrun: {file_name}: {_NO_SOCKETS}", file=sys.stderr)
        else:
            # From the script's own frames on, as Python shows it.
            traceback.print_exception(type(e), e, e.__traceback__.tb_next or e.__traceback__)
        return 1
    return 0


def mounted_search_path() -> list:
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


def whole_writes(stream, fd: int):
    """`stream` again, over a descriptor that writes everything it is given."""
    return io.TextIOWrapper(_WholeWrites(fd), encoding=stream.encoding, errors=stream.errors,
                            newline="\n", write_through=True)
