"""The ``sqlite`` resource history: one table in the registry's file; survives a restart.

Its own connection (the registry keeps its own; both a
:class:`~lightd_coordinator.storage.sqlite.SqliteFile`), one transaction per operation, called
through ``asyncio.to_thread`` so the event loop never waits on the disk.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from lightd_coordinator.history.base import StatsHistory
from lightd_coordinator.storage.sqlite import SqliteFile
from lightd_shared.stats import StatsSample

__all__ = ["SqliteStatsHistory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stats_samples (
    node_id TEXT NOT NULL, server TEXT NOT NULL, ts REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS stats_samples_by_server ON stats_samples (node_id, server, ts);
CREATE INDEX IF NOT EXISTS stats_samples_by_time ON stats_samples (ts);
"""


class SqliteStatsHistory(StatsHistory):
    provider = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.file = SqliteFile(path, schema=_SCHEMA, what="stats history")
        self.path = self.file.path
        self._run = self.file.run

    async def open(self) -> None:
        await self.file.open()

    async def close(self) -> None:
        await self.file.close()

    async def add(
        self, node_id: str, server: str, sample: StatsSample, *, keep: int, after: datetime
    ) -> None:
        body = sample.model_dump_json()
        moment = sample.timestamp.timestamp()

        def add(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO stats_samples (node_id, server, ts, body) VALUES (?, ?, ?, ?)",
                (node_id, server, moment, body),
            )
            c.execute(
                "DELETE FROM stats_samples WHERE node_id = ? AND server = ? AND (ts <= ? OR "
                "rowid NOT IN (SELECT rowid FROM stats_samples WHERE node_id = ? AND server = ? "
                "ORDER BY ts DESC LIMIT ?))",
                (node_id, server, after.timestamp(), node_id, server, keep),
            )

        await self._run(add)

    async def latest(self, node_id: str, server: str) -> datetime | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT body FROM stats_samples WHERE node_id = ? AND server = ? "
                "ORDER BY ts DESC LIMIT 1",
                (node_id, server),
            ).fetchone()
        )
        return StatsSample.model_validate_json(row[0]).timestamp if row else None

    async def servers(self, node_id: str) -> set[str]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT DISTINCT server FROM stats_samples WHERE node_id = ?", (node_id,)
            ).fetchall()
        )
        return {str(row[0]) for row in rows}

    async def read(
        self, node_id: str, server: str, *, since: datetime | None, limit: int
    ) -> list[StatsSample]:
        after = since.timestamp() if since is not None else float("-inf")
        rows = await self._run(
            lambda c: c.execute(
                "SELECT body FROM stats_samples WHERE node_id = ? AND server = ? AND ts > ? "
                "ORDER BY ts LIMIT ?",
                (node_id, server, after, limit),
            ).fetchall()
        )
        return [StatsSample.model_validate_json(row[0]) for row in rows]

    async def purge(self, before: datetime) -> int:
        moment = before.timestamp()
        return await self._run(
            lambda c: int(c.execute("DELETE FROM stats_samples WHERE ts < ?", (moment,)).rowcount)
        )

    async def forget(self, node_id: str) -> None:
        await self._run(
            lambda c: c.execute("DELETE FROM stats_samples WHERE node_id = ?", (node_id,))
        )
