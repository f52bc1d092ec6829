"""32 concurrent sandbox runs from Python threads: start-to-first-output p50/p99 and resident
memory per run.

    python bindings/python/benches/concurrent_runs.py [--runs 32] [--rounds 3]

Each run is the hostile fixture's `hold 1500`: it prints `ready` and then waits 1.5 s, so all
runs are alive together while the resident set size is sampled. Start is when the thread
calls `Sandbox.run`; first output is when the run's first stdout bytes reach Python.
"""

import argparse
import os
import tempfile
import threading
import time

import kvrun
from common import ROOT, percentile

HOSTILE = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release", "kvrun-hostile-training.wasm")


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, kvrun.Keyvault(data_dir=data_dir) as kv:
        kv.set_secret("db-password", "bench-value")
        sandbox = kvrun.Sandbox(kv, max_runs=args.runs, max_memory=64 << 20)
        component = sandbox.prepare(HOSTILE)
        baseline = rss_kib()
        sandbox.run(component, args=["hold", "1"], stdout=lambda b: None)
        latencies, per_run = [], []
        for _ in range(args.rounds):
            peak = [baseline]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_kib())
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()

            def one():
                started = time.perf_counter()
                first = []

                def out(data):
                    if not first:
                        first.append(time.perf_counter())

                result = sandbox.run(component, secrets=["db-password"], args=["hold", "1500"], stdout=out, max_memory=64 << 20)
                assert result.status == 0, result
                latencies.append(first[0] - started)

            threads = [threading.Thread(target=one) for _ in range(args.runs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stop.set()
            sampler.join()
            per_run.append((peak[0] - baseline) / args.runs)
    print(f"{args.runs} concurrent runs x {args.rounds} rounds (hostile fixture, hold 1500 ms)")
    print(f"start to first output: p50 {percentile(latencies, 50) * 1e3:.1f} ms, p99 {percentile(latencies, 99) * 1e3:.1f} ms")
    print(f"resident memory per run: {max(per_run) / 1024:.2f} MiB (peak RSS while all runs are alive, minus RSS before the first run, / runs)")


if __name__ == "__main__":
    main()
