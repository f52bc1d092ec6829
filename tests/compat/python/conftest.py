"""Starts `kvrun vault serve` on a free loopback port for the compatibility scenario (the
helper is the Python package's, `bindings/python/tests/local_vault.py`)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bindings", "python", "tests"))

import local_vault  # noqa: E402


@pytest.fixture(scope="session")
def vault():
    with local_vault.served_vault(local_vault.kvrun_binary()) as served:
        yield served
