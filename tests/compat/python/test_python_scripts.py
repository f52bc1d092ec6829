"""`kvrun run SCRIPT.py`: ordinary Python scripts built with componentize-py and run in the sandbox."""

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VALUE = "s3cr3t-Pa55word-77"

SCRIPT = textwrap.dedent('''
    import sys
    import kvrun
    import helper
    from azureml.core import Run

    mode = sys.argv[1]
    if mode == "plain":
        print("plain:", kvrun.get_secret("db-password"), helper.greeting())
        print("many:", kvrun.get_secrets(["db-password"]))
    elif mode == "sdk":
        run = Run.get_context()
        print("sdk:", run.get_secret(name="db-password"))
        print("sdk many:", run.get_secrets(secrets=["db-password"]))
        try:
            run.log("loss", 0.1)
        except NotImplementedError as e:
            print("log:", e)
    elif mode == "ungranted":
        try:
            Run.get_context().get_secret(name="other-secret")
        except kvrun.SecretError as e:
            print("refused:", e.kind, e)
    elif mode == "raise":
        raise RuntimeError("failed while holding " + kvrun.get_secret("db-password"))
    elif mode == "exit":
        sys.exit(int(sys.argv[2]))
''')


@pytest.fixture(scope="module")
def scripts():
    work = tempfile.TemporaryDirectory(prefix="kvrun-compat-scripts-")
    job = os.path.join(work.name, "job")
    os.makedirs(job)
    with open(os.path.join(job, "train.py"), "w") as f:
        f.write(SCRIPT)
    with open(os.path.join(job, "helper.py"), "w") as f:
        f.write("def greeting():\n    return 'from a local module'\n")
    env = dict(os.environ)
    for name in ("KVRUN_VAULT_URL", "KVRUN_ACCESS_TOKEN", "KVRUN_AUTH", "KVRUN_LOG"):
        env.pop(name, None)
    env["KVRUN_DATA_DIR"] = os.path.join(work.name, "data")
    env["KVRUN_CACHE_DIR"] = os.path.join(work.name, "cache")
    env["KVRUN_COMPONENTIZE_PY"] = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    binary = os.environ.get("KVRUN_BIN", os.path.join(ROOT, "target", "debug", "kvrun"))

    def kvrun(*args, stdin="", extra_env=None):
        return subprocess.run([binary, *args], input=stdin, env={**env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=600)

    def kvrun_on_terminal(*args):
        """Runs kvrun with its stderr on a pseudo-terminal; returns what the terminal got."""
        leader, follower = os.openpty()
        process = subprocess.Popen([binary, *args], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        process.wait(timeout=600)
        os.close(leader)
        return seen.decode(errors="replace")

    assert kvrun("secret", "set", "db-password", stdin=VALUE).returncode == 0
    assert kvrun("secret", "set", "other-secret", stdin="not-for-this-run").returncode == 0
    yield {"dir": work.name, "job": job, "kvrun": kvrun, "terminal": kvrun_on_terminal, "cache": env["KVRUN_CACHE_DIR"]}
    work.cleanup()


def run_script(scripts, *args):
    return scripts["kvrun"]("run", os.path.join(scripts["job"], "train.py"), "--secret", "db-password", "--", *args)


def test_a_plain_script_reads_its_secret_masked_with_a_local_module(scripts):
    ran = run_script(scripts, "plain")
    assert ran.returncode == 0, ran.stderr
    assert "plain: *** from a local module" in ran.stdout
    assert "many: {'db-password': '***'}" in ran.stdout
    assert VALUE not in ran.stdout + ran.stderr
    assert '"name":"db-password","granted":true,"outcome":"ok"' in ran.stderr
    assert "kvrun: building" not in ran.stderr and "kvrun: compiling" not in ran.stderr


def test_a_script_written_for_the_original_sdk_runs_unchanged(scripts):
    ran = run_script(scripts, "sdk")
    assert ran.returncode == 0, ran.stderr
    assert "sdk: ***" in ran.stdout and "sdk many: {'db-password': '***'}" in ran.stdout
    assert "Run.log is not available in the kvrun sandbox" in ran.stdout
    assert VALUE not in ran.stdout + ran.stderr


def test_an_ungranted_name_is_refused_and_the_script_sees_the_exception(scripts):
    ran = run_script(scripts, "ungranted")
    assert ran.returncode == 0, ran.stderr
    assert "refused: denied" in ran.stdout and "was not granted to this run" in ran.stdout
    assert "not-for-this-run" not in ran.stdout + ran.stderr
    assert '"name":"other-secret","granted":false' in ran.stderr


def test_an_uncaught_exception_is_status_1_with_a_masked_traceback(scripts):
    ran = run_script(scripts, "raise")
    assert ran.returncode == 1, ran.stderr
    assert "Traceback (most recent call last)" in ran.stderr
    assert 'File "train.py", line' in ran.stderr
    assert "RuntimeError: failed while holding ***" in ran.stderr
    assert VALUE not in ran.stdout + ran.stderr


def test_sys_exit_passes_its_status_on(scripts):
    assert run_script(scripts, "exit", "3").returncode == 3
    assert run_script(scripts, "exit", "0").returncode == 0


def test_the_built_component_is_cached_and_a_change_rebuilds(scripts):
    run_script(scripts, "exit", "0")
    cached = os.listdir(os.path.join(scripts["cache"], "python"))
    assert len(cached) == 1
    with open(os.path.join(scripts["job"], "helper.py"), "a") as f:
        f.write("\nCHANGED = True\n")
    ran = run_script(scripts, "plain")
    assert ran.returncode == 0, ran.stderr
    assert len(os.listdir(os.path.join(scripts["cache"], "python"))) == 2


def test_a_native_extension_fails_the_build_with_a_clear_message(scripts):
    path = os.path.join(scripts["dir"], "uses_numpy.py")
    with open(path, "w") as f:
        f.write("import numpy\nprint(numpy.zeros(3))\n")
    ran = scripts["kvrun"]("run", path)
    assert ran.returncode != 0
    assert "uses_numpy.py imports 'numpy', which cannot be bundled" in ran.stderr
    assert "native extensions" in ran.stderr and "do not run in the WebAssembly sandbox" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "kvrun: building" not in ran.stderr
    on_terminal = scripts["terminal"]("run", path)
    assert "kvrun: building uses_numpy.py into a component with componentize-py" in on_terminal


def test_componentize_py_missing_is_a_clear_error(scripts):
    ran = scripts["kvrun"]("run", os.path.join(scripts["job"], "train.py"),
                           extra_env={"KVRUN_COMPONENTIZE_PY": "/nonexistent/componentize-py"})
    assert ran.returncode != 0
    assert "needs componentize-py" in ran.stderr and "pip install componentize-py" in ran.stderr
