"""`kvrun vault serve` on a free loopback port, and loopback HTTP services that answer JSON,
started from Python: one helper for the package's tests, its benchmarks and the
compatibility suite."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PREFIX = "kvrun local vault serving "


def kvrun_binary(prefer_release=False):
    """KVRUN_BIN, else the debug build (the release build first when `prefer_release`)."""
    builds = ["release", "debug"] if prefer_release else ["debug"]
    for candidate in (os.environ.get("KVRUN_BIN"), *(os.path.join(ROOT, "target", b, "kvrun") for b in builds)):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("build kvrun first (cargo build), or set KVRUN_BIN")


@contextmanager
def served_vault(binary, addr="127.0.0.1:0", public_url=None):
    """Runs `binary vault serve` on `addr` (under `public_url`, if given) over a fresh data
    directory; yields its url, ca, token and binary, and checks that it stops cleanly on
    SIGTERM."""
    data_dir = tempfile.mkdtemp(prefix="kvrun-served-")
    extra = ["--public-url", public_url] if public_url else []
    # Its log (a line per request) goes to a file: read through a pipe, it would wake a thread
    # of this process at every request, in the middle of what a benchmark measures.
    log = open(os.path.join(data_dir, "serve.log"), "w+")
    process = subprocess.Popen([binary, "vault", "serve", "--addr", addr, "--data-dir", data_dir, *extra],
                               stderr=log, text=True)
    try:
        deadline = time.monotonic() + 30
        first = ""
        while not first.endswith("\n") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
            log.seek(0)
            first = log.readline()
        first = first.strip()
        assert first.startswith(PREFIX), first or open(log.name).read()
        with open(os.path.join(data_dir, "token")) as f:
            token = f.read().strip()
        yield {"url": first[len(PREFIX):], "ca": os.path.join(data_dir, "ca.pem"), "token": token, "binary": binary}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def json_service(answer):
    """A plain-HTTP loopback server on a free port whose every GET and POST is answered 200
    with ``answer(path, headers, body)`` as JSON (``body`` the request's bytes); yields its
    origin, ``http://127.0.0.1:PORT``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY the second waits for the
        # client's delayed ACK, 40 ms per answer.
        disable_nagle_algorithm = True

        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            payload = json.dumps(answer(self.path, self.headers, body)).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
