"""What the vault returns, as frozen dataclasses. None of them holds a secret value."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional


def _time(seconds: Optional[int]) -> Optional[_dt.datetime]:
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)


def _seconds(value: Optional[_dt.datetime]) -> Optional[int]:
    if value is None:
        return None
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("give a timezone-aware datetime (for example datetime.timezone.utc)")
    return int(value.timestamp())


@dataclass(frozen=True)
class SecretProperties:
    """A secret version's properties: everything but its value.

    ``version`` is ``None`` for the entries of :meth:`Keyvault.list_secrets`, which describe
    the secret rather than one version. Times are timezone-aware UTC datetimes.
    """

    name: str
    version: Optional[str]
    id: str
    content_type: Optional[str]
    enabled: bool
    not_before: Optional[_dt.datetime]
    expires: Optional[_dt.datetime]
    created: Optional[_dt.datetime]
    updated: Optional[_dt.datetime]
    tags: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def _from(cls, raw: Mapping[str, Any]) -> "SecretProperties":
        return cls(
            name=raw["name"],
            version=raw["version"],
            id=raw["id"],
            content_type=raw["content_type"],
            enabled=raw["enabled"],
            not_before=_time(raw["not_before"]),
            expires=_time(raw["expires"]),
            created=_time(raw["created"]),
            updated=_time(raw["updated"]),
            tags=dict(raw["tags"]),
        )


@dataclass(frozen=True)
class Secret:
    """A secret version with its value. ``repr`` and ``str`` never show the value."""

    properties: SecretProperties
    value: str = field(repr=False)

    @property
    def name(self) -> str:
        """The secret's name."""
        return self.properties.name

    def __str__(self) -> str:
        return f"Secret({self.properties.name!r}, value=***)"


@dataclass(frozen=True)
class DeletedSecret:
    """What a delete leaves behind (recovery and purge dates when the vault keeps deleted
    secrets)."""

    properties: SecretProperties
    recovery_id: Optional[str]
    deleted_date: Optional[_dt.datetime]
    scheduled_purge_date: Optional[_dt.datetime]

    @property
    def name(self) -> str:
        """The secret's name."""
        return self.properties.name

    @classmethod
    def _from(cls, raw: Mapping[str, Any]) -> "DeletedSecret":
        return cls(
            properties=SecretProperties._from(raw["properties"]),
            recovery_id=raw["recovery_id"],
            deleted_date=_time(raw["deleted_date"]),
            scheduled_purge_date=_time(raw["scheduled_purge_date"]),
        )
