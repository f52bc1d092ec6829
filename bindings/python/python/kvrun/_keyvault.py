"""The ``Keyvault`` class: every operation of the ``keyvault`` interface."""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
from typing import Dict, Iterable, List, Mapping, Optional, Union

from . import _kvrun
from ._kvrun import KvrunError
from ._models import DeletedSecret, Secret, SecretProperties, _seconds

PathLike = Union[str, "os.PathLike[str]"]


class BatchError(KvrunError):
    """Some entries of :meth:`Keyvault.set_secrets` failed; the others were set.

    ``succeeded`` maps names to their new properties, ``failed`` names to the exception.
    """

    def __init__(self, succeeded: Dict[str, SecretProperties], failed: Dict[str, KvrunError]):
        names = ", ".join(sorted(failed))
        super().__init__(f"{len(failed)} of {len(succeeded) + len(failed)} secrets were not set: {names}")
        self.kind = "batch"
        self.hint = "see .failed for each name's error; the others were set"
        self.status = None
        self.succeeded = succeeded
        self.failed = failed


def _tags(tags: Optional[Mapping[str, str]]):
    if tags is None:
        return None
    return [(str(k), str(v)) for k, v in tags.items()]


class Keyvault:
    """A Key Vault, reached through the kvrun vault client component.

    ``Keyvault()`` with no arguments uses the same vault the ``kvrun`` command line would:
    ``KVRUN_VAULT_URL``, else a workspace config found from the current directory upwards,
    else the embedded local vault (started in this process over ``data_dir``, or
    ``KVRUN_DATA_DIR``, or the platform data directory).

    Arguments:
        vault_url: a vault such as ``https://myvault.vault.azure.net``.
        data_dir: the embedded local vault's data directory.
        ca_cert: a PEM file with a CA to trust besides the public roots.
        token: a static access token, sent only to ``vault_url``.
        auth: one credential source: ``"token"`` (``KVRUN_ACCESS_TOKEN``),
            ``"client-secret"``, ``"workload-identity"``, ``"managed-identity"`` or
            ``"azure-cli"``; by default the static token if one is given, else the Azure
            chain. Azure tokens are sent only to Key Vault hosts, after their challenge.
        api_version: the Key Vault ``api-version`` (default ``7.5``).
        unsafe_token_to_any_host: DANGEROUS, for test servers only: answer any host's
            challenge with an Azure token (as ``kvrun --unsafe-token-to-any-host``).

    Every method is safe to call from several threads at once and releases the GIL while it
    waits; each has an ``*_async`` twin for asyncio. Failures raise :class:`KvrunError`
    subclasses whose messages never carry a value. Use it as a context manager, or call
    :meth:`close`, to stop the embedded vault.
    """

    def __init__(
        self,
        vault_url: Optional[str] = None,
        *,
        data_dir: Optional[PathLike] = None,
        ca_cert: Optional[PathLike] = None,
        token: Optional[str] = None,
        auth: Optional[str] = None,
        api_version: Optional[str] = None,
        unsafe_token_to_any_host: bool = False,
    ) -> None:
        self._vault = _kvrun.Vault(
            vault_url,
            os.fspath(data_dir) if data_dir is not None else None,
            os.fspath(ca_cert) if ca_cert is not None else None,
            token,
            auth,
            api_version,
            unsafe_token_to_any_host,
        )

    @property
    def vault_url(self) -> str:
        """The vault's URL."""
        return self._vault.vault_url

    @property
    def ca_pem(self) -> Optional[str]:
        """The embedded vault's CA certificate (PEM); ``None`` for a remote vault."""
        return self._vault.ca_pem

    def __repr__(self) -> str:
        return f"Keyvault({self._vault.vault_url!r}, {self._vault.source})"

    def close(self) -> None:
        """Stops the embedded vault, if any. Later calls raise :class:`ConfigError`."""
        self._vault.close()

    def __enter__(self) -> "Keyvault":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
    ) -> SecretProperties:
        """Sets ``name`` to ``value``; an existing name gets a new version."""
        return SecretProperties._from(self._vault.set_secret(name, value, content_type, _tags(tags)))

    def set_secrets(self, secrets: Mapping[str, str]) -> Dict[str, SecretProperties]:
        """Sets many secrets concurrently. Raises :class:`BatchError` (after setting the
        others) when some fail."""
        names = list(secrets)
        outcomes = self._vault.set_secrets([(n, secrets[n], None, None) for n in names])
        succeeded: Dict[str, SecretProperties] = {}
        failed: Dict[str, KvrunError] = {}
        for name, outcome in zip(names, outcomes):
            if isinstance(outcome, BaseException):
                failed[name] = outcome
            else:
                succeeded[name] = SecretProperties._from(outcome)
        if failed:
            raise BatchError(succeeded, failed)
        return succeeded

    # -- reading --------------------------------------------------------------------------

    def get_secret(self, name: str, version: Optional[str] = None) -> str:
        """The value of the latest version of ``name``, or of ``version``."""
        return self._vault.get_secret_value(name, version)

    def get_secret_with_properties(self, name: str, version: Optional[str] = None) -> Secret:
        """The value and the properties of the latest version, or of ``version``."""
        value, properties = self._vault.get_secret(name, version)
        return Secret(SecretProperties._from(properties), value)

    def get_secrets(self, names: Iterable[str]) -> Dict[str, Optional[str]]:
        """Many values in one call: ``None`` for a name that does not exist."""
        names = list(names)
        return dict(zip(names, self._vault.get_secrets(names)))

    def list_secrets(self) -> List[SecretProperties]:
        """Every secret (properties only)."""
        return [SecretProperties._from(p) for p in self._vault.list_secrets()]

    def list_secret_versions(self, name: str) -> List[SecretProperties]:
        """Every version of ``name`` (properties only)."""
        return [SecretProperties._from(p) for p in self._vault.list_secret_versions(name)]

    # -- changing and deleting --------------------------------------------------------------

    def update_secret_properties(
        self,
        name: str,
        version: Optional[str] = None,
        *,
        enabled: Optional[bool] = None,
        content_type: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        not_before: Optional[_dt.datetime] = None,
        expires: Optional[_dt.datetime] = None,
    ) -> SecretProperties:
        """Changes a version's properties (the latest when ``version`` is ``None``);
        arguments left ``None`` stay as they are."""
        return SecretProperties._from(
            self._vault.update_secret_properties(
                name, version, enabled, content_type, _tags(tags), _seconds(not_before), _seconds(expires)
            )
        )

    def delete_secret(self, name: str) -> DeletedSecret:
        """Deletes every version of ``name``."""
        return DeletedSecret._from(self._vault.delete_secret(name))

    def get_deleted_secret(self, name: str) -> DeletedSecret:
        """A deleted secret that can still be recovered."""
        return DeletedSecret._from(self._vault.get_deleted_secret(name))

    def list_deleted_secrets(self) -> List[DeletedSecret]:
        """Every deleted secret that can still be recovered."""
        return [DeletedSecret._from(d) for d in self._vault.list_deleted_secrets()]

    def recover_deleted_secret(self, name: str) -> SecretProperties:
        """Brings a deleted secret back."""
        return SecretProperties._from(self._vault.recover_deleted_secret(name))

    def purge_deleted_secret(self, name: str) -> None:
        """Removes a deleted secret for good."""
        self._vault.purge_deleted_secret(name)

    def backup_secret(self, name: str) -> str:
        """An opaque backup of every version of ``name``, for :meth:`restore_secret`."""
        return self._vault.backup_secret(name)

    def restore_secret(self, backup: str) -> SecretProperties:
        """Restores a backup made by :meth:`backup_secret`."""
        return SecretProperties._from(self._vault.restore_secret(backup))

    # -- asyncio --------------------------------------------------------------------------
    # Each runs its blocking twin in a worker thread; kvrun releases the GIL while it waits,
    # so many run at once.

    async def set_secret_async(self, name: str, value: str, *, content_type: Optional[str] = None, tags: Optional[Mapping[str, str]] = None) -> SecretProperties:
        """Awaitable :meth:`set_secret`."""
        return await asyncio.to_thread(self.set_secret, name, value, content_type=content_type, tags=tags)

    async def set_secrets_async(self, secrets: Mapping[str, str]) -> Dict[str, SecretProperties]:
        """Awaitable :meth:`set_secrets`."""
        return await asyncio.to_thread(self.set_secrets, secrets)

    async def get_secret_async(self, name: str, version: Optional[str] = None) -> str:
        """Awaitable :meth:`get_secret`."""
        return await asyncio.to_thread(self.get_secret, name, version)

    async def get_secret_with_properties_async(self, name: str, version: Optional[str] = None) -> Secret:
        """Awaitable :meth:`get_secret_with_properties`."""
        return await asyncio.to_thread(self.get_secret_with_properties, name, version)

    async def get_secrets_async(self, names: Iterable[str]) -> Dict[str, Optional[str]]:
        """Awaitable :meth:`get_secrets`."""
        return await asyncio.to_thread(self.get_secrets, list(names))

    async def list_secrets_async(self) -> List[SecretProperties]:
        """Awaitable :meth:`list_secrets`."""
        return await asyncio.to_thread(self.list_secrets)

    async def list_secret_versions_async(self, name: str) -> List[SecretProperties]:
        """Awaitable :meth:`list_secret_versions`."""
        return await asyncio.to_thread(self.list_secret_versions, name)

    async def delete_secret_async(self, name: str) -> DeletedSecret:
        """Awaitable :meth:`delete_secret`."""
        return await asyncio.to_thread(self.delete_secret, name)

    async def recover_deleted_secret_async(self, name: str) -> SecretProperties:
        """Awaitable :meth:`recover_deleted_secret`."""
        return await asyncio.to_thread(self.recover_deleted_secret, name)

    async def purge_deleted_secret_async(self, name: str) -> None:
        """Awaitable :meth:`purge_deleted_secret`."""
        await asyncio.to_thread(self.purge_deleted_secret, name)
