"""Fixtures for the Python package's tests: the real local vault (`kvrun vault serve`), the
embedded default, and the training components the Rust build made."""

import os
import shutil
import tempfile

import pytest

import local_vault

ROOT = local_vault.ROOT
COMPONENTS = os.path.join(ROOT, "target", "guest-build", "wasm32-wasip2", "guest-release")
EXAMPLE = os.path.join(COMPONENTS, "kvrun-example-train.wasm")
HOSTILE = os.path.join(COMPONENTS, "kvrun-hostile-training.wasm")
DATA = os.path.join(ROOT, "examples", "data")


@pytest.fixture(autouse=True, scope="session")
def isolated_environment():
    """No vault, token or cache from the machine leaks into the tests."""
    cache = tempfile.mkdtemp(prefix="kvrun-py-cache-")
    saved = dict(os.environ)
    for name in ("KVRUN_VAULT_URL", "KVRUN_ACCESS_TOKEN", "KVRUN_DATA_DIR", "KVRUN_LOG"):
        os.environ.pop(name, None)
    os.environ["KVRUN_CACHE_DIR"] = cache
    # Never probe a real identity endpoint: point the Azure chain at a closed loopback port.
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://127.0.0.1:9"
    os.environ["IDENTITY_ENDPOINT"] = "http://127.0.0.1:9"
    yield
    os.environ.clear()
    os.environ.update(saved)
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def served_vault():
    """`kvrun vault serve` on a free loopback port: its URL, CA file and token."""
    with local_vault.served_vault(local_vault.kvrun_binary()) as vault:
        yield vault


@pytest.fixture
def data_dir():
    path = tempfile.mkdtemp(prefix="kvrun-py-embedded-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
