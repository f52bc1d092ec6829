"""Secrets for a training script run by `kvrun run SCRIPT.py`.

    import kvrun
    password = kvrun.get_secret("db-password")
    values = kvrun.get_secrets(["db-password", "api-token"])   # {name: value or None}

    handle = kvrun.get_secret_handle("mlflow-password")       # use it, never read it
    kvrun.http.post(url, json=body, auth=("trainer", handle))

Only the names the run was granted (`kvrun run --secret NAME`) can be read; the host refuses
the others and records every access. Values printed to stdout or stderr come out masked.
A secret bound to a service (`kvrun run --use-secret NAME=ORIGIN`) gives a handle instead:
an opaque placeholder that the host replaces by the value only in requests to that origin
(`kvrun.http`, see its docs).

The same module runs in both of kvrun's Python runtimes; only its transport to the host
differs (`_component.py` over the component's imports, `_door.py` over the scientific
runtime's door).
"""

from typing import Dict, Iterable, Optional

from . import http
from ._failures import SecretFailure
from ._transport import transport as _transport

__all__ = ["SecretError", "get_secret", "get_secrets", "get_secret_handle", "http"]


class SecretError(Exception):
    """A secret could not be read. ``kind`` says why: ``not-found``, ``denied`` (not granted
    to this run, or refused by the vault), ``invalid-name``, ``unavailable``, ..."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def get_secret(name: str) -> str:
    """The latest value of the secret ``name``."""
    try:
        return _transport.get_secret(name)
    except SecretFailure as e:
        raise SecretError(e.kind, e.message) from None


def get_secret_handle(name: str) -> str:
    """A handle for the secret ``name``, which this run may use but never read: put it where
    the value belongs in a request made with :mod:`kvrun.http` (the password of ``auth``, an
    ``Authorization: Bearer`` header, and the query or body where the operator allowed it),
    and the host puts the value in on the way out, to the origins the secret is bound to
    only. Raises :class:`SecretError` (``denied``) when the run has no binding for ``name``."""
    try:
        return _transport.get_secret_handle(name)
    except SecretFailure as e:
        raise SecretError(e.kind, e.message) from None


def get_secrets(names: Iterable[str]) -> Dict[str, Optional[str]]:
    """The latest values of ``names`` in one call; ``None`` for a name that does not exist."""
    names = list(names)
    try:
        return dict(zip(names, _transport.get_secrets(names)))
    except SecretFailure as e:
        raise SecretError(e.kind, e.message) from None
