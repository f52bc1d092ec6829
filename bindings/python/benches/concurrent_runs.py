"""32 concurrent sandbox runs from Python threads: start-to-first-output p50/p99 and resident
memory per run.

    python bindings/python/benches/concurrent_runs.py [--runs 32] [--rounds 3]

Each run is the hostile fixture's `hold 1500`: it prints `ready` and then waits 1.5 s, so all
runs are alive together while the resident set size is sampled. Start is when the thread
calls `Sandbox.run`; first output is when the run's first stdout bytes reach Python. Memory per run is reported
as resident set, proportional set, anonymous memory and the machine's `MemAvailable` drop
(`common.memory_kib`).
"""

import argparse
import os
import tempfile

import kvrun
from common import ROOT, concurrent_rounds, print_concurrent, require_release_package

HOSTILE = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release", "kvrun-hostile-training.wasm")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_release_package()
    with tempfile.TemporaryDirectory() as data_dir, kvrun.Keyvault(data_dir=data_dir) as kv:
        kv.set_secret("db-password", "bench-value")
        sandbox = kvrun.Sandbox(kv, max_runs=args.runs, max_memory=64 << 20)
        component = sandbox.prepare(HOSTILE)
        sandbox.run(component, args=["hold", "1"], stdout=lambda b: None)
        latencies, per_run = concurrent_rounds(
            lambda out: sandbox.run(component, secrets=["db-password"], args=["hold", "1500"], stdout=out, max_memory=64 << 20),
            args.runs, args.rounds)
    print(f"{args.runs} concurrent runs x {args.rounds} rounds (hostile fixture, hold 1500 ms)")
    print_concurrent(latencies, per_run)


if __name__ == "__main__":
    main()
