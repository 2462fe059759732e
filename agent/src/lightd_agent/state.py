"""The agent's state directory: one JSON file per server, written atomically.

Docker's labels say which containers are ours; this directory says what each server *should*
be (its spec, and the state it was last put in). Together they let a restarted agent tell a
running server (keep it) from an install that was cut off (mark it ``failed``), without ever
duplicating or orphaning a container.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lightd_agent.events import LifecycleEvent, LifecycleKind
from lightd_shared.containers import ContainerSpec, ServerFacts

__all__ = ["JournalEntry", "StateStore", "StoredServer"]

log = logging.getLogger(__name__)


class JournalEntry(BaseModel):
    """One lifecycle event written ahead in its server's state file (see ``servers/writer.py``).

    The state file written with a change also holds that change's events; each outbox records
    the last event id it holds per server, so at start an event the outbox never got (a kill
    between the two writes) is found here and written to it, in order. The state word is the
    record's own, so it is not repeated.
    """

    model_config = ConfigDict(extra="ignore")

    id: int
    kind: LifecycleKind
    error: str | None = None
    data: str | None = None
    exit_code: int | None = None
    at: datetime

    @classmethod
    def of(cls, event: LifecycleEvent) -> JournalEntry:
        return cls(
            id=event.id,
            kind=event.kind,
            error=event.error,
            data=event.data,
            exit_code=event.exit_code,
            at=event.timestamp,
        )

    def event(self, server: str, state: str) -> LifecycleEvent:
        return LifecycleEvent(
            server=server,
            kind=self.kind,
            state=state,
            error=self.error,
            data=self.data,
            exit_code=self.exit_code,
            timestamp=self.at,
            id=self.id,
        )


class StoredServer(ServerFacts):
    """What the state file of one server holds: its run facts and its spec (which holds its id),
    and the events of the change that wrote it (the write-ahead ``journal``)."""

    id: None = Field(default=None, exclude=True)
    spec: ContainerSpec
    journal: list[JournalEntry] = Field(default_factory=list)


class StateStore:
    """``<storage.base_path>/state/servers/<id>.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "servers"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, server: str) -> Path:
        return self.directory / f"{server}.json"

    def save(self, record: StoredServer, journal: list[JournalEntry] | None = None) -> None:
        """Write atomically (temp file, fsync, rename): a crash leaves the old or new file.

        ``journal``: the events of this change, written ahead with it (replaces the record's).
        """
        self.prepare()
        if journal is not None:
            record = record.model_copy(update={"journal": journal})
        data = record.model_dump_json(indent=2).encode()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(record.spec.id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def probe(self) -> None:
        """Write, fsync and remove a small file: raise ``OSError`` if the directory cannot
        take a write now (full, read-only)."""
        self.prepare()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".probe-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"lightd")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def remove(self, server: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(server).unlink()

    def load_all(self) -> list[StoredServer]:
        if not self.directory.is_dir():
            return []
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(StoredServer.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.error(
                    "state file %s is unreadable (%s); the server it describes is rebuilt from "
                    "Docker's labels if its container exists",
                    path,
                    exc,
                )
        return records


def parse_docker_time(value: str | None) -> datetime | None:
    """Docker's ``2026-01-13T18:17:00.123456789Z`` (nanoseconds) -> aware ``datetime``."""
    if not value or value.startswith("0001-"):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
