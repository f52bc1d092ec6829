"""kvrun: hand secrets to training code, and nothing else.

- :class:`Keyvault` sets and reads secrets in a Key Vault (or the embedded local vault)
  through kvrun's vault client component, which runs in the native wasmtime host: the
  credential is added by the host, only for the vault, and never enters the component.
- :class:`Sandbox` runs untrusted training components with exactly the secrets they were
  granted, masked output, limits and an audit log.

Errors are :class:`KvrunError` subclasses; no message, ``repr`` or ``str`` carries a secret
value.

:func:`get_secret` and :func:`get_secrets` read from the default vault (``Keyvault()``), so
a script written for ``kvrun run SCRIPT.py`` (where the same functions read the run's
granted secrets) also runs outside the sandbox.
"""

import threading as _threading
from typing import Dict as _Dict, Iterable as _Iterable, Optional as _Optional

from ._kvrun import (
    CapacityError,
    ComponentError,
    ConfigError,
    Conflict,
    Denied,
    InvalidArgument,
    InvalidName,
    KvrunError,
    NotFound,
    PolicyDenied,
    ServiceError,
    StorageError,
    Unauthenticated,
    Unavailable,
)
from ._keyvault import BatchError, Keyvault
from ._models import DeletedSecret, Secret, SecretProperties
from ._sandbox import AuditRecord, Component, RunResult, Sandbox

_default_lock = _threading.Lock()
_default: _Optional[Keyvault] = None


def _default_keyvault() -> Keyvault:
    global _default
    with _default_lock:
        if _default is None:
            _default = Keyvault()
        return _default


def get_secret(name: str) -> str:
    """The value of ``name`` in the default vault (``Keyvault()``: ``KVRUN_VAULT_URL``, a
    workspace config, else the embedded local vault)."""
    return _default_keyvault().get_secret(name)


def get_secrets(names: _Iterable[str]) -> _Dict[str, _Optional[str]]:
    """The values of ``names`` in the default vault; ``None`` for a name that does not exist."""
    return _default_keyvault().get_secrets(names)


__all__ = [
    "AuditRecord",
    "BatchError",
    "CapacityError",
    "Component",
    "ComponentError",
    "ConfigError",
    "Conflict",
    "DeletedSecret",
    "Denied",
    "InvalidArgument",
    "InvalidName",
    "Keyvault",
    "KvrunError",
    "NotFound",
    "PolicyDenied",
    "RunResult",
    "Sandbox",
    "Secret",
    "SecretProperties",
    "ServiceError",
    "StorageError",
    "Unauthenticated",
    "Unavailable",
    "get_secret",
    "get_secrets",
]
