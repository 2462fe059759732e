"""Backup metadata, kept durably: one JSON file per backup, written atomically.

``<state_dir>/backups-meta/<server>/<backup id>.json`` holds the backup's
:class:`~lightd_shared.backups.BackupInfo`. They survive restarts; a backup still ``running``
when the agent stopped is ``failed`` at the next start (:meth:`BackupStore.fail_interrupted`),
with an error saying so. Its partial archive, if any, never got a backup's name (the targets
write all or nothing).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from pydantic import ValidationError

from lightd_agent.backups.files import write_atomic
from lightd_shared.backups import BackupInfo
from lightd_shared.timestamps import utcnow

__all__ = ["INTERRUPTED", "BackupStore"]

log = logging.getLogger(__name__)

INTERRUPTED = (
    "the agent stopped while this backup was running; it was not finished (take a new one)"
)


class BackupStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, server: str, backup: str) -> Path:
        return self.directory / server / f"{backup}.json"

    def save(self, info: BackupInfo) -> None:
        write_atomic(self._path(info.server, info.id), info.model_dump_json().encode())

    def get(self, server: str, backup: str) -> BackupInfo | None:
        path = self._path(server, backup)
        try:
            return BackupInfo.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.error("backup metadata %s cannot be read (%s); ignored", path, exc)
            return None

    def listing(self, server: str) -> list[BackupInfo]:
        """The server's backups, oldest first."""
        found = []
        folder = self.directory / server
        if not folder.is_dir():
            return []
        for path in sorted(folder.glob("*.json")):
            info = self.get(server, path.stem)
            if info is not None:
                found.append(info)
        return sorted(found, key=lambda info: (info.created, info.id))

    def servers(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir())

    def remove(self, server: str, backup: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(server, backup).unlink()

    def fail_interrupted(self) -> list[BackupInfo]:
        """At start: every backup (and restore) still ``running`` is ``failed``, saying why."""
        changed = []
        for server in self.servers():
            for info in self.listing(server):
                dirty = False
                if info.state == "running":
                    info.state = "failed"
                    info.error = INTERRUPTED
                    info.finished = utcnow()
                    dirty = True
                restore = info.last_restore
                if restore is not None and restore.state == "running":
                    restore.state = "failed"
                    restore.error = (
                        "the agent stopped during this restore; at its next start the volume "
                        "was left whole (the old content, or the new one if the swap had begun)"
                    )
                    restore.finished = utcnow()
                    info.last_restore = restore
                    dirty = True
                if dirty:
                    self.save(info)
                    changed.append(info)
        return changed
