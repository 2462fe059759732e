"""Backups of a server's volume: the agent's ``/containers/{id}/backups`` bodies.

::

    POST   /containers/{id}/backups                      BackupRequest  -> 202 BackupAccepted
    GET    /containers/{id}/backups                      -> BackupList
    GET    /containers/{id}/backups/{backup}             -> BackupInfo
    GET    /containers/{id}/backups/{backup}/download    -> the archive (application/gzip)
    POST   /containers/{id}/backups/{backup}/restore     -> 202 RestoreAccepted
    DELETE /containers/{id}/backups/{backup}             -> BackupRemoved

A backup's ``state`` is one of :data:`BACKUP_STATES` (``running``, ``completed``, ``failed``);
its ``last_restore`` says how the latest restore from it went (the same three words).

The same operations as container commands (``backup.create``, ``backup.list``, ``backup.get``,
``backup.restore``, ``backup.delete``) take the params below; their typed answers
(:class:`BackupInfo`, :class:`BackupList`, :class:`BackupRemoved`) travel in a command
result's ``data`` (:func:`backup_answer_kind` tells them apart from the other answers).
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from lightd_shared.base import Payload, Request
from lightd_shared.durations import Duration
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier

__all__ = [
    "BACKUP_ACTIONS",
    "BACKUP_DOWNLOAD_PATH",
    "BACKUP_DOWNLOAD_PREFIX",
    "BACKUP_DOWNLOAD_SUBJECT",
    "BACKUP_EVENT_KINDS",
    "BACKUP_STATES",
    "MAX_IGNORE_PATTERNS",
    "BackupAccepted",
    "BackupId",
    "BackupInfo",
    "BackupList",
    "BackupParams",
    "BackupRemoved",
    "BackupRequest",
    "BackupState",
    "BackupTargetKind",
    "CreateBackupParams",
    "IgnorePattern",
    "RestoreAccepted",
    "RestoreOutcome",
    "backup_answer_kind",
]

BackupState = Literal["running", "completed", "failed"]
BACKUP_STATES: tuple[str, ...] = typing.get_args(BackupState)

BackupTargetKind = Literal["local", "s3"]
"""Where archives are kept: a directory under the agent's storage, or an S3-compatible bucket."""

BACKUP_ACTIONS: tuple[str, ...] = (
    "backup.create",
    "backup.list",
    "backup.get",
    "backup.restore",
    "backup.delete",
)
"""The container-command actions of backups."""

BACKUP_EVENT_KINDS: tuple[str, ...] = (
    "backup_started",
    "backup_progress",
    "backup_completed",
    "backup_failed",
    "restore_started",
    "restore_progress",
    "restore_completed",
    "restore_failed",
)
"""Event kinds on the agent's ``GET /events`` for backups and restores."""

MAX_IGNORE_PATTERNS = 256

BACKUP_DOWNLOAD_PATH = "/coordinator/backups/{server}/{backup}"
"""The agent's archive download for the coordinator, which relays it to operators."""
BACKUP_DOWNLOAD_SUBJECT = "coordinator/backups"
"""``sub`` of the JWT (signed with the node's dispatch key) that opens only that download; its
``jti`` starts with :data:`BACKUP_DOWNLOAD_PREFIX` + ``<server>/<backup>:``."""
BACKUP_DOWNLOAD_PREFIX = "backup-download:"

BackupId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    Field(description="A backup id (letters, digits, '.', '_', '-')"),
]

IgnorePattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    Field(description="One .gitignore-style pattern, relative to the volume's root"),
]


class BackupRequest(Request):
    """``POST /containers/{id}/backups``: what to leave out (``.gitignore`` patterns).

    The patterns add to the agent's ``backups.ignore``.
    """

    ignore: list[IgnorePattern] = Field(
        default_factory=list,
        max_length=MAX_IGNORE_PATTERNS,
        description="gitignore-style patterns of paths to leave out, e.g. ['logs/', '*.tmp']",
    )


class BackupAccepted(Payload):
    """The 202 answer to a new backup: ``{"id", "state": "running"}``."""

    id: str
    state: BackupState = "running"


class RestoreOutcome(Payload):
    """How the latest restore from a backup went."""

    state: BackupState
    started: Timestamp
    finished: Timestamp | None = None
    error: str | None = None


class BackupInfo(Payload):
    """One backup's metadata, as the agent keeps it (durably) and answers it."""

    id: str
    server: str
    state: BackupState
    target: BackupTargetKind
    created: Timestamp
    finished: Timestamp | None = None
    size: int | None = Field(default=None, ge=0, description="Bytes of the archive (tar.gz)")
    checksum: str | None = Field(default=None, description="sha256 of the archive, hex")
    files: int | None = Field(default=None, ge=0, description="Entries in the archive")
    ignored: list[str] = Field(default_factory=list, description="The ignore patterns used")
    skipped: list[str] = Field(
        default_factory=list,
        description="Paths left out that an archive cannot safely hold (devices, sockets, "
        "symlinks pointing out of the volume); at most 100 are named",
    )
    error: str | None = None
    last_restore: RestoreOutcome | None = None


class BackupList(Payload):
    """``GET /containers/{id}/backups``: oldest first."""

    backups: list[BackupInfo]
    count: int


class RestoreAccepted(Payload):
    """The 202 answer to a restore: its outcome comes on ``/events`` and in ``last_restore``."""

    id: str
    server: str
    state: BackupState = "running"


class BackupRemoved(Payload):
    """``DELETE /containers/{id}/backups/{backup}``."""

    backup: str
    server: str
    deleted: Literal[True] = True


# -- container-command params ------------------------------------------------------------------
class _ServerParams(Request):
    timeout: Duration | None = Field(default=None, description="How long to wait, e.g. '30s'")
    server: Identifier = Field(description="The server id")


class CreateBackupParams(_ServerParams):
    """``backup.create`` / ``backup.list`` params."""

    ignore: list[IgnorePattern] = Field(default_factory=list, max_length=MAX_IGNORE_PATTERNS)


class BackupParams(_ServerParams):
    """``backup.get`` / ``backup.restore`` / ``backup.delete`` params."""

    backup: BackupId


def backup_answer_kind(value: Any) -> str | None:
    """The tag of a backup answer in a command result's ``data``, or ``None`` for another one."""
    if isinstance(value, dict):
        if "backups" in value:
            return "backup_list"
        if "backup" in value and "deleted" in value:
            return "backup_removed"
        if "target" in value and "server" in value:
            return "backup"
        return None
    if isinstance(value, BackupList):
        return "backup_list"
    if isinstance(value, BackupRemoved):
        return "backup_removed"
    if isinstance(value, BackupInfo):
        return "backup"
    return None
