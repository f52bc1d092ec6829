"""A small training-job runner: several components at once, each with its own grants.

    python examples/runner.py [--python-job train-py.wasm]

It stores two secrets in a throwaway embedded vault, then starts concurrently:

- the Rust example job (`examples/train`) granted `db-password` and the example data;
- the Python example job (`examples/train-py`, built with componentize-py) when given;
- the hostile fixture, which asks for `db-password` without a grant and tries the network;
- the hostile fixture again, spinning until its one-second timeout.

and prints each run's status, stop reason and audit summary. Output of every run is
collected per run (masked by the host) and shown after the table.
"""

import argparse
import concurrent.futures
import io
import os
import sys
import tempfile
import time

import kvrun

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILT = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust-job", default=os.path.join(BUILT, "kvrun-example-train.wasm"))
    parser.add_argument("--hostile", default=os.path.join(BUILT, "kvrun-hostile-training.wasm"))
    parser.add_argument("--python-job", help="the componentize-py build of examples/train-py")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kvrun-runner-") as data_dir, kvrun.Keyvault(data_dir=data_dir) as kv:
        kv.set_secrets({"db-password": "runner-demo-pa55", "api-token": "runner-demo-token"})
        sandbox = kvrun.Sandbox(kv, max_runs=8)
        data = os.path.join(ROOT, "examples", "data")
        jobs = {
            "rust-job": (options.rust_job, dict(secrets=["db-password"], dirs=[(data, "/data", True)])),
            "hostile-ungranted": (options.hostile, dict(args=["ask", "db-password"])),
            "hostile-network": (options.hostile, dict(secrets=["api-token"], args=["http", "https://example.com/"])),
            "hostile-spin": (options.hostile, dict(args=["loop"], timeout=1)),
        }
        if options.python_job:
            jobs["python-job"] = (options.python_job, dict(secrets=["db-password"], dirs=[(data, "/data", True)]))
        prepared = {path: sandbox.prepare(path) for path, _ in jobs.values()}

        def launch(label):
            path, grants = jobs[label]
            out = io.StringIO()
            started = time.perf_counter()
            result = sandbox.run(prepared[path], stdout=out, stderr=out, **grants)
            return label, result, time.perf_counter() - started, out.getvalue()

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            finished = list(pool.map(launch, jobs))

    print(f"{'run':<20} {'status':>6}  {'stopped by':<10} {'seconds':>7}  audit")
    for label, result, seconds, _ in finished:
        audit = ", ".join(f"{r.name}:{'granted' if r.granted else 'refused'}:{r.outcome}" for r in result.audit) or "-"
        print(f"{label:<20} {result.status:>6}  {result.stop_reason or '-':<10} {seconds:>7.2f}  {audit}")
    for label, _, _, output in finished:
        print(f"\n--- {label} ---\n{output.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
