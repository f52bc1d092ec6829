"""`azureml.core.Run` for scripts run by `kvrun run SCRIPT.py`.

Scripts written for the original SDK keep working where they use the run's secrets:

    from azureml.core import Run
    run = Run.get_context()
    password = run.get_secret(name="db-password")
    values = run.get_secrets(secrets=["db-password", "api-token"])
    handle = run.get_secret_handle(name="mlflow-password")   # kvrun's: use it, never read it

Everything else of the SDK raises :class:`NotAvailableInSandbox`.
"""

from typing import Dict, List, Optional

import kvrun

__all__ = ["Run", "NotAvailableInSandbox"]


class NotAvailableInSandbox(NotImplementedError):
    """A feature of the Azure ML SDK that the kvrun sandbox does not provide."""


def _unavailable(what: str) -> NotAvailableInSandbox:
    return NotAvailableInSandbox(
        f"{what} is not available in the kvrun sandbox: a script run by `kvrun run` can read the "
        "secrets its run was granted (Run.get_context().get_secret / get_secrets / get_secret_handle) and nothing else of azureml"
    )


class Run:
    """The current run. Only :meth:`get_secret`, :meth:`get_secrets` and kvrun's
    :meth:`get_secret_handle` are available."""

    _context: Optional["Run"] = None

    @classmethod
    def get_context(cls, allow_offline: bool = True, **_kwargs) -> "Run":
        """The run this script is part of."""
        if cls._context is None:
            cls._context = cls()
        return cls._context

    def get_secret(self, name: str) -> str:
        """The value of the secret ``name``, if the run was granted it."""
        return kvrun.get_secret(name)

    def get_secrets(self, secrets: List[str]) -> Dict[str, Optional[str]]:
        """The values of ``secrets`` (a name that does not exist gives ``None``)."""
        return kvrun.get_secrets(secrets)

    def get_secret_handle(self, name: str) -> str:
        """A handle for the secret ``name`` that the run may use in requests but never read
        (see :func:`kvrun.get_secret_handle`); not in the original SDK, whose runs read every
        secret they use."""
        return kvrun.get_secret_handle(name)

    def __getattr__(self, name: str):
        raise _unavailable(f"Run.{name}")


def __getattr__(name: str):
    raise _unavailable(f"azureml.core.{name}")
