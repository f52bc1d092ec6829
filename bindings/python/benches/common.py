"""Shared by the Python benchmarks: a `kvrun vault serve` (the release build when there is
one) to measure against, from the tests' helper."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from local_vault import ROOT, kvrun_binary, served_vault as _served_vault  # noqa: E402

__all__ = ["ROOT", "percentile", "served_vault"]


def served_vault():
    """`kvrun vault serve` on a free loopback port: {url, ca, token, binary}."""
    return _served_vault(kvrun_binary(prefer_release=True))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
