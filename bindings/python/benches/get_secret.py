"""Warm and cold `get_secret` from Python: kvrun's package vs azure-keyvault-secrets and vs
the Rust `Client` beneath the package, side by side against the same `kvrun vault serve`,
in one run.

    python bindings/python/benches/get_secret.py [--calls 2000] [--processes 10] [--threads 8]

Warm: one client each, calls alternated in rounds of 100, median microseconds per call; the
Rust client's figure is the same gets timed inside the extension with no Python between
them (`Vault._time_native_calls`). Batch: `get_secrets` of 100 names from Python and from
Rust. Threads: `--threads` Python threads calling `get_secret` at once on one `Keyvault`,
total calls per second against one thread's. Cold: a fresh interpreter that imports the
library, makes a client and reads one secret; whole-process wall time (median), and the
time from interpreter start to the value.
"""

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import time

from common import percentile, require_release_package, served_vault

SDK_CLIENT = """
import time
from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient
class StaticToken:
    def __init__(self, token): self.token = token
    def get_token(self, *scopes, **kwargs): return AccessToken(self.token, int(time.time()) + 3600)
client = SecretClient(URL, StaticToken(TOKEN), verify_challenge_resource=False, connection_verify=CA)
get = lambda name: client.get_secret(name).value
"""

KVRUN_CLIENT = """
import kvrun
client = kvrun.Keyvault(URL, ca_cert=CA, token=TOKEN)
get = client.get_secret
"""


def cold_script(client):
    return (
        "import time, sys\nstarted = time.perf_counter()\n"
        "URL, CA, TOKEN = sys.argv[1:4]\n" + client + "\nvalue = get('bench-secret')\n"
        "print(time.perf_counter() - started)\n"
    )


def warm(vault, calls):
    env = {"URL": vault["url"], "CA": vault["ca"], "TOKEN": vault["token"]}
    sdk, ours = dict(env), dict(env)
    exec(SDK_CLIENT, sdk)
    exec(KVRUN_CLIENT, ours)
    assert sdk["get"]("bench-secret") == ours["get"]("bench-secret") == "bench-value"
    native = ours["client"]._vault._time_native_calls
    timings = {"kvrun": [], "sdk": [], "rust": []}
    for _ in range(calls // 100):
        for label, get in (("kvrun", ours["get"]), ("sdk", sdk["get"])):
            for _ in range(100):
                t = time.perf_counter()
                get("bench-secret")
                timings[label].append(time.perf_counter() - t)
        timings["rust"] += native(["bench-secret"], 100, False)
    ours["client"].close()
    return timings


def batch(vault, rounds):
    """`get_secrets` of 100 names from Python and from the Rust client, alternated."""
    import kvrun

    names = [f"bench-{i:03}" for i in range(100)]
    timings = {"python": [], "rust": []}
    with kvrun.Keyvault(vault["url"], ca_cert=vault["ca"], token=vault["token"]) as kv:
        kv.set_secrets({name: f"value-{name}" for name in names})
        kv.get_secrets(names)
        for _ in range(rounds):
            t = time.perf_counter()
            values = kv.get_secrets(names)
            timings["python"].append(time.perf_counter() - t)
            assert values["bench-042"] == "value-bench-042"
            timings["rust"] += kv._vault._time_native_calls(names, 1, True)
    return timings


def threaded(vault, threads, seconds=3.0):
    """Calls per second of `get_secret` from 1 and from `threads` Python threads sharing one
    `Keyvault`."""
    import kvrun

    rates = {}
    with kvrun.Keyvault(vault["url"], ca_cert=vault["ca"], token=vault["token"]) as kv:
        for count in (1, threads):
            with concurrent.futures.ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda _: kv.get_secret("bench-secret"), range(count * 10)))
                deadline = time.perf_counter() + seconds

                def loop(_):
                    done = 0
                    while time.perf_counter() < deadline:
                        kv.get_secret("bench-secret")
                        done += 1
                    return done

                started = time.perf_counter()
                total = sum(pool.map(loop, range(count)))
                rates[count] = total / (time.perf_counter() - started)
    return rates


def cold(vault, processes):
    results = {}
    for label, client in (("kvrun", KVRUN_CLIENT), ("sdk", SDK_CLIENT)):
        walls, insides = [], []
        for _ in range(processes):
            t = time.perf_counter()
            ran = subprocess.run([sys.executable, "-c", cold_script(client), vault["url"], vault["ca"], vault["token"]], capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - t)
            insides.append(float(ran.stdout.strip()))
        results[label] = (walls, insides)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    require_release_package()
    os.environ.setdefault("KVRUN_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "kvrun"))
    with served_vault() as vault:
        import kvrun

        with kvrun.Keyvault(vault["url"], ca_cert=vault["ca"], token=vault["token"]) as kv:
            kv.set_secret("bench-secret", "bench-value")
        print(f"vault: {vault['binary']} at {vault['url']}")
        timings = warm(vault, args.calls)
        batches = batch(vault, args.batches)
        rates = threaded(vault, args.threads)
        cold_runs = cold(vault, args.processes)
    us = {k: statistics.median(v) * 1e6 for k, v in timings.items()}
    p99 = {k: percentile(v, 99) * 1e6 for k, v in timings.items()}
    print(f"\nwarm get_secret, {args.calls} calls each (microseconds per call)")
    print(f"{'client':<28} {'median':>8} {'p99':>8}")
    print(f"{'kvrun (component, native host)':<28} {us['kvrun']:>8.0f} {p99['kvrun']:>8.0f}")
    print(f"{'the Rust Client beneath it':<28} {us['rust']:>8.0f} {p99['rust']:>8.0f}")
    print(f"{'azure-keyvault-secrets':<28} {us['sdk']:>8.0f} {p99['sdk']:>8.0f}")
    print(f"kvrun is {us['sdk'] / us['kvrun']:.1f}x faster than the SDK (goal: at least 6x), "
          f"{us['kvrun'] / us['rust']:.2f}x the Rust Client (goal: at most 1.3x)")
    batch_us = {k: statistics.median(v) * 1e6 for k, v in batches.items()}
    print(f"\nget_secrets of 100 names, {args.batches} calls each (microseconds per call, median)")
    print(f"from Python {batch_us['python']:.0f}, the Rust Client {batch_us['rust']:.0f}: "
          f"{batch_us['python'] / batch_us['rust']:.2f}x (goal: at most 1.3x)")
    print(f"\n{args.threads} threads calling get_secret at once: {rates[args.threads]:.0f} calls/s, "
          f"one thread {rates[1]:.0f} calls/s: {rates[args.threads] / rates[1]:.2f}x")
    print(f"\nfresh interpreter: import, client, one get ({args.processes} processes each, milliseconds, median)")
    print(f"{'client':<28} {'whole process':>14} {'start to value':>15}")
    for label, name in (("kvrun", "kvrun"), ("sdk", "azure-keyvault-secrets")):
        walls, insides = cold_runs[label]
        print(f"{name:<28} {statistics.median(walls) * 1e3:>14.0f} {statistics.median(insides) * 1e3:>15.0f}")


if __name__ == "__main__":
    main()
