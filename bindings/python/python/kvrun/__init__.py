"""kvrun: hand secrets to training code, and nothing else.

- :class:`Keyvault` sets and reads secrets in a Key Vault (or the embedded local vault)
  through kvrun's vault client component, which runs in the native wasmtime host: the
  credential is added by the host, only for the vault, and never enters the component.
- :class:`Sandbox` runs untrusted training components with exactly the secrets they were
  granted, masked output, limits and an audit log.

Errors are :class:`KvrunError` subclasses; no message, ``repr`` or ``str`` carries a secret
value.
"""

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
]
