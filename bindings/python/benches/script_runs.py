"""Python scripts in the sandbox: the one-time runtime build, `kvrun run SCRIPT.py`, and 32
concurrent `Sandbox.run_script` runs, in one run.

    python bindings/python/benches/script_runs.py [--runs 32] [--repeat 9]

Needs componentize-py next to this Python (or `KVRUN_COMPONENTIZE_PY`) and the release
`kvrun` (`cargo build --release -p kvrun`; else the debug one). Everything uses a fresh cache
and data directory, so the first step builds and compiles the Python runtime:

1. `kvrun compile --python`: componentize-py's build plus Cranelift's compile (wall, peak RSS);
2. `kvrun run` of `examples/train-py/train.py` (runtime cached), of a never-seen script (a new
   file each time, importing a new local module), of the same script after an edit, and of
   the compiled Rust example component for comparison: medians of `--repeat` runs (wall
   time of the whole process, peak RSS from `wait4`);
3. `--runs` concurrent `Sandbox.run_script` of a script that prints a line of 206 bytes (longer
   than the masker holds back) and sleeps 1.5 s (so all runs are alive together):
   start-to-first-output p50/p99 and memory per run (the peak while all are alive, minus
   before, divided by the runs) as this process's resident set, proportional set and
   anonymous memory, and as the machine's `MemAvailable` drop (`common.memory_kib`).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import kvrun
from common import ROOT, concurrent_rounds, kvrun_binary, print_concurrent, require_release_package, timed

TRAIN_PY = os.path.join(ROOT, "examples", "train-py", "train.py")
DATA = os.path.join(ROOT, "examples", "data")
EXAMPLE_WASM = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release", "kvrun-example-train.wasm")


def cli_runs(binary, env, work, repeat):
    compile_wall, compile_rss, _ = timed([binary, "compile", "--python"], env)
    print(f"kvrun compile --python (componentize-py build + compile): {compile_wall:.1f} s wall, peak {compile_rss:.0f} MiB")
    cache = env["KVRUN_CACHE_DIR"]
    runtime = [f for f in os.listdir(os.path.join(cache, "python"))]
    size = os.path.getsize(os.path.join(cache, "python", runtime[0])) / 2**20
    compiled = [f for f in os.listdir(cache) if f.startswith("python-runtime-")]
    compiled_size = os.path.getsize(os.path.join(cache, compiled[0])) / 2**20
    print(f"runtime component {size:.1f} MiB, compiled {compiled_size:.1f} MiB")
    subprocess.run([binary, "secret", "set", "db-password"], input=b"bench-value", env=env, check=True, capture_output=True)
    subprocess.run([binary, "compile", EXAMPLE_WASM], env=env, check=True, capture_output=True)

    def never_seen(i):
        job = os.path.join(work, f"job-{i}")
        os.makedirs(job)
        with open(os.path.join(job, f"helper_{i}.py"), "w") as f:
            f.write(f"VALUE = {i}\n")
        path = os.path.join(job, "train.py")
        with open(path, "w") as f:
            f.write(f"import json, kvrun, helper_{i}\nprint(json.dumps({{'run': helper_{i}.VALUE, 'pw': kvrun.get_secret('db-password')}}))\n")
        return path

    def edited(i):
        path = os.path.join(work, "edited", "train.py")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"import kvrun\nprint('edit {i}', kvrun.get_secret('db-password'))\n")
        return path

    cases = [
        ("examples/train-py/train.py", lambda i: [binary, "run", TRAIN_PY, "--secret", "db-password", "--dir", f"{DATA}::/data:ro"]),
        ("a never-seen script and module", lambda i: [binary, "run", never_seen(i), "--secret", "db-password"]),
        ("the same script, edited", lambda i: [binary, "run", edited(i), "--secret", "db-password"]),
        ("the Rust example component (.wasm)", lambda i: [binary, "run", EXAMPLE_WASM, "--secret", "db-password", "--dir", f"{DATA}::/data:ro"]),
    ]
    env = {**env, "KVRUN_LOG": "error"}
    for label, command in cases:
        walls, peaks = [], []
        for i in range(repeat):
            wall, peak, out = timed(command(i), env)
            assert b"bench-value" not in out
            walls.append(wall)
            peaks.append(peak)
        print(f"kvrun run {label}: median {statistics.median(walls) * 1e3:.0f} ms (min {min(walls) * 1e3:.0f}, max {max(walls) * 1e3:.0f}), peak RSS {statistics.median(peaks):.0f} MiB")


def concurrent_scripts(env, work, runs, rounds):
    os.environ.update(env)
    script = os.path.join(work, "hold", "train.py")
    os.makedirs(os.path.dirname(script))
    with open(script, "w") as f:
        f.write("import sys, time, kvrun\nkvrun.get_secret('db-password')\nprint('ready ' + '.' * 200, flush=True)\ntime.sleep(1.5)\n")
    with kvrun.Keyvault(data_dir=env["KVRUN_DATA_DIR"]) as kv:
        sandbox = kvrun.Sandbox(kv, max_runs=runs, max_memory=128 << 20)
        sandbox.run_script(script, secrets=["db-password"], stdout=lambda b: None)
        latencies, per_run = concurrent_rounds(
            lambda out: sandbox.run_script(script, secrets=["db-password"], stdout=out, max_memory=128 << 20),
            runs, rounds)
    print(f"{runs} concurrent Sandbox.run_script x {rounds} rounds (prints, then sleeps 1.5 s)")
    print_concurrent(latencies, per_run)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    require_release_package()
    binary = kvrun_binary(prefer_release=True)
    print(f"kvrun: {binary}")
    with tempfile.TemporaryDirectory(prefix="kvrun-script-bench-") as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KVRUN_", "AZURE_"))}
        env.update(KVRUN_CACHE_DIR=os.path.join(work, "cache"), KVRUN_DATA_DIR=os.path.join(work, "data"),
                   AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9")
        env.setdefault("KVRUN_COMPONENTIZE_PY", os.environ.get("KVRUN_COMPONENTIZE_PY") or os.path.join(os.path.dirname(sys.executable), "componentize-py"))
        cli_runs(binary, env, work, args.repeat)
        concurrent_scripts(env, work, args.runs, args.rounds)


if __name__ == "__main__":
    main()
