"""The official Python SDK's warm get_secret, driven block by block by the get_secret benchmark.

Reads KVRUN_BENCH_URL, KVRUN_BENCH_TOKEN, KVRUN_BENCH_CA and the secret name (argv[1]).
For every line "N" on stdin it times N calls of `SecretClient.get_secret` and prints their
latencies in nanoseconds as one JSON array; "warm N" does the same without printing.
"""

import json
import os
import sys
import time

from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient


class StaticToken:
    """A credential that hands out the local vault's token."""

    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


def main():
    client = SecretClient(
        os.environ["KVRUN_BENCH_URL"],
        StaticToken(os.environ["KVRUN_BENCH_TOKEN"]),
        connection_verify=os.environ["KVRUN_BENCH_CA"],
        verify_challenge_resource=False,
    )
    name = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        samples = []
        for _ in range(int(words[-1])):
            start = time.perf_counter_ns()
            secret = client.get_secret(name)
            samples.append(time.perf_counter_ns() - start)
            assert secret.value
        print(json.dumps([] if words[0] == "warm" else samples), flush=True)


main()
