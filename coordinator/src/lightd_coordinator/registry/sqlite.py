"""The ``sqlite`` registry: nodes, command results and event history in one embedded file.

Uses the standard library's ``sqlite3`` on one connection guarded by a lock, called through
``asyncio.to_thread`` so the event loop never waits on the disk
(:class:`~lightd_coordinator.storage.sqlite.SqliteFile`, shared with the history and the
activity log). WAL journaling keeps writes cheap; every operation is one transaction, so a
crash never leaves half a change behind.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from lightd_coordinator.registry.base import (
    HeartbeatOutcome,
    Registry,
    StoredEvent,
    StoredNode,
    apply_heartbeat,
    mark_node_inactive,
)
from lightd_coordinator.storage.sqlite import SqliteFile
from lightd_shared.commands import CommandResult
from lightd_shared.nodes import NodeRecord, NodeState
from lightd_shared.services import Service
from lightd_shared.timestamps import parse_timestamp

__all__ = ["SqliteRegistry"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, command_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, node_id TEXT, type TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SqliteRegistry(Registry):
    provider = "sqlite"
    persistent = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.file = SqliteFile(path, schema=_SCHEMA, what="registry")
        self.path = self.file.path
        self._run = self.file.run

    async def open(self) -> None:
        await self.file.open()

    def open_sync(self) -> None:
        self.file.open_sync()

    def close_sync(self) -> None:
        self.file.close_sync()

    async def close(self) -> None:
        await self.file.close()

    # -- nodes ---------------------------------------------------------------------------
    async def get_node(self, node_id: str) -> StoredNode | None:
        row = await self._run(
            lambda c: c.execute("SELECT body FROM nodes WHERE id = ?", (node_id,)).fetchone()
        )
        return StoredNode.model_validate_json(row[0]) if row else None

    async def put_node(self, node: StoredNode) -> None:
        body = node.model_dump_json()
        await self._run(
            lambda c: c.execute(
                "INSERT INTO nodes (id, body) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                (node.record.id, body),
            )
        )

    async def create_node(self, node: StoredNode) -> bool:
        stored = node.model_dump_json()
        return await self._run(lambda c: _insert_node(c, node.record.id, stored))

    async def create_node_announced(
        self, node: StoredNode, *, type: str, body: str, keep: int
    ) -> int | None:
        stored = node.model_dump_json()
        node_id = node.record.id

        def create(c: sqlite3.Connection) -> int | None:
            if not _insert_node(c, node_id, stored):
                return None
            return _append_event(c, node_id, type, body, keep)

        return await self._run(create)

    async def delete_node(self, node_id: str) -> bool:
        count = await self._run(
            lambda c: c.execute("DELETE FROM nodes WHERE id = ?", (node_id,)).rowcount
        )
        return bool(count)

    async def list_nodes(self) -> list[StoredNode]:
        rows = await self._run(lambda c: c.execute("SELECT body FROM nodes ORDER BY id").fetchall())
        return [StoredNode.model_validate_json(row[0]) for row in rows]

    async def heartbeat_node(
        self, node_id: str, seen: datetime, status: NodeState, services: list[Service] | None
    ) -> HeartbeatOutcome | None:
        def beat(c: sqlite3.Connection) -> HeartbeatOutcome | None:
            row = c.execute("SELECT body FROM nodes WHERE id = ?", (node_id,)).fetchone()
            if row is None:
                return None
            updated, outcome = apply_heartbeat(
                StoredNode.model_validate_json(row[0]), seen, status, services
            )
            c.execute(
                "UPDATE nodes SET body = ? WHERE id = ?", (updated.model_dump_json(), node_id)
            )
            return outcome

        return await self._run(beat)

    async def mark_inactive(self, cutoff: datetime) -> list[NodeRecord]:
        def sweep(c: sqlite3.Connection) -> list[NodeRecord]:
            # Only the active nodes' last_seen is read (no model per node); the few stale
            # ones are parsed, changed and written back in the same transaction.
            rows = c.execute(
                "SELECT id, json_extract(body, '$.record.last_seen') FROM nodes "
                "WHERE json_extract(body, '$.record.status') = 'active' ORDER BY id"
            ).fetchall()
            went: list[NodeRecord] = []
            for node_id, last_seen in rows:
                if parse_timestamp(last_seen) >= cutoff:
                    continue
                row = c.execute("SELECT body FROM nodes WHERE id = ?", (node_id,)).fetchone()
                updated = mark_node_inactive(StoredNode.model_validate_json(row[0]))
                c.execute(
                    "UPDATE nodes SET body = ? WHERE id = ?", (updated.model_dump_json(), node_id)
                )
                went.append(updated.record)
            return went

        return await self._run(sweep)

    async def health_targets(self) -> list[tuple[str, str]]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, json_extract(body, '$.record.health_url') AS url FROM nodes "
                "WHERE url IS NOT NULL AND url != '' ORDER BY id"
            ).fetchall()
        )
        return [(str(node_id), str(url)) for node_id, url in rows]

    # -- command results -----------------------------------------------------------------
    async def put_result(self, result: CommandResult, expires_at: datetime) -> None:
        body = result.model_dump_json()
        await self._run(
            lambda c: c.execute(
                "INSERT INTO results (id, body, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET body = excluded.body, "
                "expires_at = excluded.expires_at",
                (result.id, body, expires_at.timestamp()),
            )
        )

    async def get_result(self, command_id: str) -> CommandResult | None:
        row = await self._run(
            lambda c: c.execute("SELECT body FROM results WHERE id = ?", (command_id,)).fetchone()
        )
        return CommandResult.model_validate_json(row[0]) if row else None

    async def purge_results(self, now: datetime) -> int:
        moment = now.timestamp()

        def purge(c: sqlite3.Connection) -> int:
            gone = c.execute("DELETE FROM results WHERE expires_at <= ?", (moment,)).rowcount
            c.execute("DELETE FROM idempotency WHERE expires_at <= ?", (moment,))
            return int(gone)

        return await self._run(purge)

    async def claim_idempotency_key(
        self, key: str, command_id: str, expires_at: datetime
    ) -> str | None:
        def claim(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT command_id FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row:
                return str(row[0])
            c.execute(
                "INSERT INTO idempotency (key, command_id, expires_at) VALUES (?, ?, ?)",
                (key, command_id, expires_at.timestamp()),
            )
            return None

        return await self._run(claim)

    # -- events --------------------------------------------------------------------------
    async def append_event(self, node_id: str | None, type: str, body: str, keep: int) -> int:
        return await self._run(lambda c: _append_event(c, node_id, type, body, keep))

    async def recent_events(self, limit: int) -> list[StoredEvent]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT id, node_id, type, body FROM events ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [
            StoredEvent(id=int(r[0]), node_id=r[1], type=str(r[2]), body=str(r[3]))
            for r in reversed(rows)
        ]

    async def last_event_id(self) -> int:
        row = await self._run(
            lambda c: c.execute("SELECT value FROM meta WHERE key = 'last_event_id'").fetchone()
        )
        return int(row[0]) if row else 0


def _insert_node(c: sqlite3.Connection, node_id: str, body: str) -> bool:
    """Store a node whose id is unknown (inside a transaction); ``False``: the id exists."""
    return bool(
        c.execute(
            "INSERT INTO nodes (id, body) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
            (node_id, body),
        ).rowcount
    )


def _append_event(
    c: sqlite3.Connection, node_id: str | None, type: str, body: str, keep: int
) -> int:
    """Store one event under the next id, keeping the newest ``keep`` (inside a transaction)."""
    row = c.execute("SELECT value FROM meta WHERE key = 'last_event_id'").fetchone()
    event_id = (int(row[0]) if row else 0) + 1
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('last_event_id', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (event_id,),
    )
    c.execute(
        "INSERT INTO events (id, node_id, type, body) VALUES (?, ?, ?, ?)",
        (event_id, node_id, type, body),
    )
    c.execute("DELETE FROM events WHERE id <= ?", (event_id - keep,))
    return event_id
