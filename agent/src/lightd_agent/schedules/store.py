"""Where schedules are kept: one SQLite file in the agent's state directory.

``<storage.base_path>/state/schedules.db`` holds one row per schedule: its spec, its cursor
(the last cron time already handled, so a restart knows what it missed) and how it last ran.
Every write is one transaction with ``synchronous=FULL``: a schedule is stored whole or not
at all, and a change the agent answered survives a crash right after.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lightd_shared.schedules import ScheduleRun, ScheduleSkip, ScheduleSpec
from lightd_shared.timestamps import format_timestamp, parse_timestamp

__all__ = ["SCHEDULES_FILE", "Schedule", "ScheduleStore"]

SCHEDULES_FILE = "schedules.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    server TEXT NOT NULL,
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    cursor TEXT NOT NULL,
    last_result TEXT,
    last_skipped TEXT,
    PRIMARY KEY (server, id)
)
"""


@dataclass
class Schedule:
    """One stored schedule; ``spec.id`` is always set."""

    server: str
    spec: ScheduleSpec
    cursor: datetime
    last_result: ScheduleRun | None = None
    last_skipped: ScheduleSkip | None = None

    @property
    def id(self) -> str:
        assert self.spec.id is not None
        return self.spec.id

    @property
    def key(self) -> tuple[str, str]:
        return (self.server, self.id)


class ScheduleStore:
    """The schedules file: read all at start, write one schedule at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def all(self) -> list[Schedule]:
        with self._lock:
            rows = self._db.execute(
                "SELECT server, spec, cursor, last_result, last_skipped FROM schedules "
                "ORDER BY server, id"
            ).fetchall()
        return [
            Schedule(
                server=server,
                spec=ScheduleSpec.model_validate_json(spec),
                cursor=parse_timestamp(cursor),
                last_result=ScheduleRun.model_validate_json(result) if result else None,
                last_skipped=ScheduleSkip.model_validate_json(skipped) if skipped else None,
            )
            for server, spec, cursor, result, skipped in rows
        ]

    def put(self, schedule: Schedule) -> None:
        """Write the whole schedule (insert or replace) in one transaction."""
        row = (
            schedule.server,
            schedule.id,
            schedule.spec.model_dump_json(),
            format_timestamp(schedule.cursor),
            schedule.last_result.model_dump_json() if schedule.last_result else None,
            schedule.last_skipped.model_dump_json() if schedule.last_skipped else None,
        )
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO schedules "
                "(server, id, spec, cursor, last_result, last_skipped) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )

    def delete(self, server: str, schedule_id: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM schedules WHERE server = ? AND id = ?", (server, schedule_id)
            )

    def delete_server(self, server: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM schedules WHERE server = ?", (server,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
