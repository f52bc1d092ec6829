"""Secret handles against a real experiment tracker: MLflow's tracking server (from PyPI) with
basic auth.

The example training job (`examples/train`) reports its fitted metrics through MLflow's REST
API with the *handle* of `mlflow-password` as its basic-auth password; `kvrun run
--use-secret` binds that secret to the tracker's origin. The test then reads the metrics back
with the MLflow client and the real password, and checks that the run's output, what the
component saw in the tracker's answers, and the audit hold no value.

MLflow lives in its own virtualenv (`KVRUN_MLFLOW_PYTHON`, set by `tests/compat/run`): its
dependencies are many and pinned, and the SDK scenario's virtualenv stays small.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import runtimes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PASSWORD = "mlflow-Pa55-" + secrets.token_hex(6)
ADMIN_PASSWORD = "admin-Pa55-" + secrets.token_hex(8)
GUEST_BUILD = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url, body=None, user=("admin", ADMIN_PASSWORD), method=None):
    import base64

    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


@pytest.fixture(scope="module")
def tracker():
    """A real MLflow tracking server with basic auth on a free loopback port, and a user
    `trainer` whose password is `PASSWORD`."""
    python = os.environ.get("KVRUN_MLFLOW_PYTHON")
    assert python, "KVRUN_MLFLOW_PYTHON must name the python of a virtualenv with mlflow[auth] (tests/compat/run sets it)"
    work = tempfile.TemporaryDirectory(prefix="kvrun-compat-mlflow-")
    port = _free_port()
    ini = os.path.join(work.name, "basic_auth.ini")
    with open(ini, "w") as f:
        f.write(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{work.name}/auth.db\n"
            "admin_username = admin\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n"
        )
    env = dict(os.environ)
    env.update(
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MLFLOW_AUTH_CONFIG_PATH=ini,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        HOME=work.name,
        TMPDIR=work.name,
    )
    mlflow = os.path.join(os.path.dirname(python), "mlflow")
    log = open(os.path.join(work.name, "server.log"), "w")
    server = subprocess.Popen(
        [mlflow, "server", "--app-name", "basic-auth", "--workers", "1", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{work.name}/mlflow.db",
         "--artifacts-destination", os.path.join(work.name, "artifacts")],
        env=env, cwd=work.name, stdout=log, stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise AssertionError("mlflow server did not start:\n" + open(log.name).read()[-3000:])
                time.sleep(0.5)
        _call(f"{uri}/api/2.0/mlflow/users/create", {"username": "trainer", "password": PASSWORD})
        yield {"uri": uri, "python": python, "work": work.name}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        work.cleanup()


@pytest.fixture(scope="module")
def kvrun(tracker):
    """`kvrun` on a fresh embedded vault holding `db-password` and `mlflow-password`."""
    env = dict(os.environ)
    for name in ("KVRUN_VAULT_URL", "KVRUN_ACCESS_TOKEN", "KVRUN_AUTH", "KVRUN_LOG"):
        env.pop(name, None)
    env["KVRUN_DATA_DIR"] = os.path.join(tracker["work"], "kvrun-data")
    env["KVRUN_CACHE_DIR"] = os.path.join(tracker["work"], "kvrun-cache")
    env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://127.0.0.1:9"
    binary = os.environ.get("KVRUN_BIN", os.path.join(ROOT, "target", "debug", "kvrun"))

    # The Python example runs in kvrun's Python runtime, built once with the componentize-py
    # beside this Python.
    env["KVRUN_COMPONENTIZE_PY"] = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    # The scikit-learn example runs in the scientific runtime, prepared once by tests/compat/run.
    runtimes.seed(env["KVRUN_CACHE_DIR"])

    def run(*args, stdin=""):
        return subprocess.run([binary, *args], input=stdin, env=env, capture_output=True, text=True, timeout=600)

    for name, value in (("db-password", "db-pa55-for-mlflow"), ("mlflow-password", PASSWORD)):
        done = run("secret", "set", name, stdin=value + "\n")
        assert done.returncode == 0, done.stderr
    return run


EXAMPLES = {
    "rust": [os.path.join(GUEST_BUILD, "kvrun-example-train.wasm")],
    "python": [os.path.join(ROOT, "examples", "train-py", "train.py")],
    # pandas and scikit-learn, in the scientific runtime (chosen by its imports), with the
    # Python example's MLflow client from --python-path.
    "sklearn": [os.path.join(ROOT, "examples", "train-sklearn", "train.py"),
                "--python-path", os.path.join(ROOT, "examples", "train-py")],
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_example_logs_metrics_with_a_handle_and_never_sees_the_password(tracker, kvrun, example):
    """The Rust example component, the Python example script (`examples/train-py/train.py`,
    in kvrun's standard Python runtime) and the scikit-learn one (`examples/train-sklearn`, in
    the scientific runtime) each log their metrics with the handle of `mlflow-password`."""
    audit = os.path.join(tracker["work"], f"audit-{example}.jsonl")
    uri = tracker["uri"]
    done = kvrun(
        "run", *EXAMPLES[example],
        "--secret", "db-password",
        "--dir", os.path.join(ROOT, "examples", "data") + "::/data:ro",
        "--use-secret", f"mlflow-password={uri}/api/2.0/mlflow",
        "--env", f"MLFLOW_TRACKING_URI={uri}",
        "--env", "MLFLOW_TRACKING_USERNAME=trainer",
        "--env", f"MLFLOW_EXPERIMENT_NAME=kvrun-compat-{example}",
        "--audit", audit,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "logged 3 metrics to MLflow run " in done.stdout, done.stdout
    run_id = done.stdout.split("MLflow run ")[1].split()[0]

    read_back = subprocess.run(
        [tracker["python"], "-c",
         "import json, sys, mlflow\n"
         "client = mlflow.tracking.MlflowClient(sys.argv[1])\n"
         "run = client.get_run(sys.argv[2])\n"
         "print(json.dumps({'metrics': run.data.metrics, 'user': run.info.user_id, 'status': run.info.status}))",
         uri, run_id],
        env={**os.environ, "MLFLOW_TRACKING_USERNAME": "trainer", "MLFLOW_TRACKING_PASSWORD": PASSWORD,
             "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": tracker["work"]},
        capture_output=True, text=True, timeout=120,
    )
    assert read_back.returncode == 0, read_back.stderr[-3000:]
    seen = json.loads(read_back.stdout.strip().splitlines()[-1])
    assert set(seen["metrics"]) == {"slope", "intercept", "mse"}, seen
    assert abs(seen["metrics"]["slope"] - 2.5021) < 1e-3 and abs(seen["metrics"]["intercept"] - 0.9823) < 1e-3, seen
    assert seen["status"] == "FINISHED"

    records = [json.loads(line) for line in open(audit)]
    uses = [r for r in records if r["operation"] == "use-secret"]
    assert len(uses) >= 5 and all(r["outcome"] == "substituted" for r in uses), uses
    assert all(r["origin"] == uri and r["path_prefix"] == "/api/2.0/mlflow" for r in uses), uses
    everything = done.stdout + done.stderr + open(audit).read()
    assert PASSWORD not in everything


def test_what_the_tracker_answers_reaches_the_run_without_the_password(tracker, kvrun):
    """The hostile fixture sends the handle to the tracker and prints each answer whole and
    reversed (so that output masking alone could not hide it): no form of the password."""
    uri = tracker["uri"]
    done = kvrun(
        "run", os.path.join(GUEST_BUILD, "kvrun-hostile-training.wasm"),
        "--use-secret", f"mlflow-password={uri}/api/2.0/mlflow",
        "--", "use", "mlflow-password", f"{uri}/api/2.0/mlflow/users/get?username=trainer", "basic",
    )
    assert done.returncode == 0, done.stderr
    assert "use: status 200" in done.stdout or "use: status 403" in done.stdout, done.stdout
    assert PASSWORD not in done.stdout and PASSWORD[::-1] not in done.stdout

    elsewhere = kvrun(
        "run", os.path.join(GUEST_BUILD, "kvrun-hostile-training.wasm"),
        "--use-secret", f"mlflow-password={uri}/api/2.0/mlflow",
        "--", "use", "mlflow-password", f"{uri}/ajax-api/2.0/mlflow/users/get?username=trainer", "basic",
    )
    assert "the kvrun host refused the request (this run may not send it there)" in elsewhere.stdout, elsewhere.stdout
    assert '"outcome":"refused: ' in elsewhere.stderr, elsewhere.stderr


ASKS = """
import sys, kvrun
handle = kvrun.get_secret_handle("mlflow-password")
for url in sys.argv[1:]:
    try:
        answer = kvrun.http.get(url, auth=("trainer", handle))
        # Reversed, so that output masking alone could not hide what the script saw.
        print("status", answer.status, answer.text[::-1])
    except kvrun.http.RequestRefused as e:
        print("refused:", e.reason)
"""


def test_what_the_tracker_answers_reaches_a_python_script_without_the_password(tracker, kvrun):
    script = os.path.join(tracker["work"], "asks.py")
    with open(script, "w") as f:
        f.write(ASKS)
    uri = tracker["uri"]
    done = kvrun(
        "run", script, "--use-secret", f"mlflow-password={uri}/api/2.0/mlflow",
        "--", f"{uri}/api/2.0/mlflow/users/get?username=trainer", f"{uri}/ajax-api/2.0/mlflow/users/get?username=trainer",
    )
    assert done.returncode == 0, done.stderr
    assert "status 200" in done.stdout or "status 403" in done.stdout, done.stdout
    assert "refused: the handle of \"mlflow-password\" may go only where it is bound" in done.stdout, done.stdout
    assert PASSWORD not in done.stdout + done.stderr and PASSWORD[::-1] not in done.stdout
