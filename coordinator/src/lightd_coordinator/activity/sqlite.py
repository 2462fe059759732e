"""The ``sqlite`` activity log: one table in the registry's file; survives a restart.

Its own connection (:class:`~lightd_coordinator.storage.sqlite.SqliteFile`, as the registry and
the history have). The columns a filter reads are indexed; SQL narrows by the exact filters
and :meth:`~lightd_shared.activity.ActivityQuery.matches` decides, so every store filters alike
(an ``action`` prefix or a ``4xx`` outcome class is matched there).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from lightd_coordinator.activity.base import ActivityStore, Draft, to_entry
from lightd_coordinator.storage.sqlite import SqliteFile
from lightd_shared.activity import ActivityEntry, ActivityQuery

__all__ = ["SqliteActivityStore"]

_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
    node TEXT, server TEXT, user TEXT, subject TEXT, action TEXT NOT NULL,
    outcome TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activity_by_time ON activity (ts);
CREATE INDEX IF NOT EXISTS activity_by_node ON activity (node, id);
CREATE INDEX IF NOT EXISTS activity_by_user ON activity (user, id);
"""


def _select(sql: str, params: list[Any]) -> Callable[[sqlite3.Connection], list[Any]]:
    def select(c: sqlite3.Connection) -> list[Any]:
        return c.execute(sql, params).fetchall()

    return select


class SqliteActivityStore(ActivityStore):
    provider = "sqlite"
    grouped = True

    def __init__(self, path: str | Path) -> None:
        self.file = SqliteFile(path, schema=_SCHEMA, what="activity log")
        self.path = self.file.path

    async def open(self) -> None:
        await self.file.open()

    async def close(self) -> None:
        await self.file.close()

    async def append(self, draft: Draft, *, keep: int) -> int:
        return (await self.append_many([draft], keep=keep))[0]

    async def append_many(self, drafts: list[Draft], *, keep: int) -> list[int]:
        rows = [
            (
                datetime.fromisoformat(draft["time"]).timestamp(),
                draft["kind"],
                draft.get("node"),
                draft.get("server"),
                draft.get("user"),
                draft.get("subject"),
                draft["action"],
                draft["outcome"],
                json.dumps(draft, separators=(",", ":")),
            )
            for draft in drafts
        ]

        def add(c: sqlite3.Connection) -> list[int]:
            ids = []
            for row in rows:
                cursor = c.execute(
                    "INSERT INTO activity (ts, kind, node, server, user, subject, action, "
                    "outcome, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                ids.append(int(cursor.lastrowid or 0))
            if ids:
                # ids only grow (AUTOINCREMENT): the newest ``keep`` are the ids above this
                c.execute("DELETE FROM activity WHERE id <= ?", (ids[-1] - keep,))
            return ids

        return await self.file.run(add)

    async def page(self, query: ActivityQuery, limit: int) -> list[ActivityEntry]:
        where: list[str] = []
        args: list[Any] = []
        for column in ("node", "server", "kind"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.user is not None:
            where.append("(user = ? OR subject = ?)")
            args += [query.user, query.user]
        if query.action is not None and not query.action.endswith("*"):
            where.append("action = ?")
            args.append(query.action)
        if query.outcome is not None and "x" not in query.outcome:
            where.append("outcome = ?")
            args.append(query.outcome)
        if query.since is not None:
            where.append("ts >= ?")
            args.append(query.since.timestamp())
        if query.until is not None:
            where.append("ts <= ?")
            args.append(query.until.timestamp())
        found: list[ActivityEntry] = []
        before = query.before
        while len(found) < limit:
            clauses = [*where, "id < ?"] if before is not None else where
            params = [*args, before] if before is not None else args
            sql = "SELECT id, body FROM activity"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            sql += " ORDER BY id DESC LIMIT ?"
            rows = await self.file.run(_select(sql, [*params, _BATCH]))
            for entry_id, body in rows:
                entry = to_entry(int(entry_id), str(body))
                if query.matches(entry):
                    found.append(entry)
                    if len(found) >= limit:
                        break
            if len(rows) < _BATCH:
                break
            before = int(rows[-1][0])
        return found

    async def purge(self, before: datetime) -> int:
        moment = before.timestamp()
        return await self.file.run(
            lambda c: int(c.execute("DELETE FROM activity WHERE ts < ?", (moment,)).rowcount)
        )
