"""One HTTP request from training code through the host's `wasi:http` (policy, handle
substitution, echo masking), in Python (`kvrun.http` in kvrun's Python runtime) and in Rust
(the `wasi` crate's bindings in `examples/train`), in one run.

    python bindings/python/benches/http_requests.py [--repeat 15]

Both examples fit the same data; with `MLFLOW_TRACKING_URI` set they also report to MLflow
with the handle of `mlflow-password` as the basic-auth password: 6 requests (get-by-name,
runs/create, 3 log-metric, runs/update) to a loopback stand-in that answers as MLflow's REST
API does. The cost of one request is the median run with the tracker, minus the median run
without it, divided by the requests the stand-in counted per run. Needs the release `kvrun`
(`cargo build --release -p kvrun`; else the debug one) and componentize-py next to this
Python (or `KVRUN_COMPONENTIZE_PY`); it uses a fresh cache and data directory.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import ROOT, json_service, kvrun_binary  # noqa: E402

TRAIN_PY = os.path.join(ROOT, "examples", "train-py", "train.py")
EXAMPLE_WASM = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release", "kvrun-example-train.wasm")
DATA = os.path.join(ROOT, "examples", "data")


class StandIn:
    """MLflow's REST API, as far as the examples use it; counts the requests."""

    requests = 0
    answers = {"/api/2.0/mlflow/experiments/get-by-name": {"experiment": {"experiment_id": "1"}},
               "/api/2.0/mlflow/runs/create": {"run": {"info": {"run_id": "bench-run"}}}}

    @classmethod
    def answer(cls, path, _headers, _body):
        cls.requests += 1
        return cls.answers.get(path.split("?")[0], {})


def timed(command, env):
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    binary = kvrun_binary(prefer_release=True)
    with json_service(StandIn.answer) as uri, tempfile.TemporaryDirectory(prefix="kvrun-bench-http-") as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KVRUN_", "AZURE_"))}
        env.update(KVRUN_DATA_DIR=os.path.join(work, "data"), KVRUN_CACHE_DIR=os.path.join(work, "cache"),
                   AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9")
        env.setdefault("KVRUN_COMPONENTIZE_PY", os.environ.get("KVRUN_COMPONENTIZE_PY")
                       or os.path.join(os.path.dirname(sys.executable), "componentize-py"))
        for name, value in (("db-password", "bench-db-value"), ("mlflow-password", "bench-mlflow-value")):
            subprocess.run([binary, "secret", "set", name], input=value, env=env, check=True, capture_output=True, text=True)
        subprocess.run([binary, "compile", "--python"], env=env, check=True, capture_output=True)
        subprocess.run([binary, "compile", EXAMPLE_WASM], env=env, check=True, capture_output=True)
        common = ["--secret", "db-password", "--dir", f"{DATA}::/data:ro", "--audit", os.path.join(work, "audit.jsonl")]
        tracked = ["--use-secret", f"mlflow-password={uri}/api/2.0/mlflow", "--env", f"MLFLOW_TRACKING_URI={uri}",
                   "--env", "MLFLOW_TRACKING_USERNAME=trainer"]
        print(f"kvrun {binary}, {args.repeat} runs of each, medians")
        for label, job in (("Rust example (wasi crate)", EXAMPLE_WASM), ("Python example (kvrun.http)", TRAIN_PY)):
            plain, with_tracker = [], []
            before = StandIn.requests
            for _ in range(args.repeat):
                plain.append(timed([binary, "run", job, *common], env))
                with_tracker.append(timed([binary, "run", job, *common, *tracked], env))
            per_run = (StandIn.requests - before) / args.repeat
            extra = statistics.median(with_tracker) - statistics.median(plain)
            print(f"{label}: run {statistics.median(plain) * 1000:.1f} ms, with {per_run:.0f} requests "
                  f"{statistics.median(with_tracker) * 1000:.1f} ms: {extra / per_run * 1e6:.0f} µs per request")


if __name__ == "__main__":
    main()
