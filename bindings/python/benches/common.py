"""Shared by the Python benchmarks: a `kvrun vault serve` (the release build when there is
one) to measure against, from the tests' helper."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from local_vault import ROOT, json_service, kvrun_binary, served_vault as _served_vault  # noqa: E402

__all__ = ["ROOT", "concurrent_rounds", "json_service", "kvrun_binary", "memory_kib", "percentile",
           "print_concurrent", "require_release_package", "served_vault", "timed"]


def require_release_package():
    """Exits with a message when the installed kvrun package is a debug build: its figures
    would say nothing of the package users install."""
    from kvrun import _kvrun

    if _kvrun.BUILD_PROFILE != "release":
        sys.exit(f"the installed kvrun package ({os.path.dirname(_kvrun.__file__)}) is a "
                 f"{_kvrun.BUILD_PROFILE} build, as tests/compat/run makes it; install the release "
                 "build to measure: pip install ./bindings/python (or KVRUN_WHEEL_PROFILE=release "
                 "tests/compat/run)")


def served_vault():
    """`kvrun vault serve` on a free loopback port: {url, ca, token, binary}."""
    return _served_vault(kvrun_binary(prefer_release=True))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def memory_kib():
    """This process's resident set, proportional set and anonymous (private, copied) memory,
    and the machine's memory in use, in KiB. Pages that many instances map copy-on-write
    from one file count once per instance in the resident set, but are one page in memory:
    the proportional set divides them among their mappings."""
    seen = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Anonymous"):
                seen[name] = int(rest.split()[0])
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                # Counted down: the peak of what is used is the lowest available.
                seen["Used"] = -int(line.split()[1])
    return seen


MEMORY_LABELS = (("Rss", "resident set"), ("Pss", "proportional set"),
                 ("Anonymous", "anonymous (private)"), ("Used", "the machine's MemAvailable drop"))


def concurrent_rounds(run_once, runs, rounds):
    """`rounds` times, `runs` threads each call `run_once(stdout)` at once, while memory is
    sampled. Returns the start-to-first-output latencies (seconds) and, per round, the peak
    of each `memory_kib` figure minus its value before, divided by the runs."""
    baseline = memory_kib()
    latencies, per_run = [], []
    for _ in range(rounds):
        peak = dict(baseline)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for name, kib in memory_kib().items():
                    peak[name] = max(peak[name], kib)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()

        def one():
            started = time.perf_counter()
            first = []

            def out(data):
                if not first:
                    first.append(time.perf_counter())

            result = run_once(out)
            assert result.status == 0, result
            latencies.append(first[0] - started)

        threads = [threading.Thread(target=one) for _ in range(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        sampler.join()
        per_run.append({name: (peak[name] - baseline[name]) / runs for name in peak})
    return latencies, per_run


def print_concurrent(latencies, per_run):
    """The figures of `concurrent_rounds`."""
    print(f"start to first output: p50 {percentile(latencies, 50) * 1e3:.1f} ms, p99 {percentile(latencies, 99) * 1e3:.1f} ms")
    for name, label in MEMORY_LABELS:
        print(f"memory per run, {label}: {max(r[name] for r in per_run) / 1024:.2f} MiB")


def timed(command, env):
    """Wall seconds and peak RSS (MiB) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {err.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024, out
