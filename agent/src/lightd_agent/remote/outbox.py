"""The durable outbox: every remote update is written here before it is sent.

Why SQLite (standard library) in WAL mode with ``synchronous=FULL``: a row committed by
:meth:`Outbox.enqueue` survives ``kill -9`` of the agent and a power cut right after, and the
delivery loop reads and deletes rows while lifecycle code keeps adding them.

Tables:

- ``updates``: one row per update not yet acknowledged by the remote, with its per-server
  ``seq`` (sent as ``X-Lightd-Sequence``), its ``idempotency_key`` (the same on every retry),
  the exact JSON body, ``attempts`` and ``next_attempt_at`` (backoff).
- ``sequences``: the last sequence number handed out per server, so numbers keep increasing
  across restarts even when the queue has been emptied.
- ``dead_letters``: updates the remote refused for good (4xx other than 401/403/408/429), kept
  for an operator to list and replay.

An acknowledged update is *deleted* in the same transaction that records the acknowledgement,
so it can never be picked up again, crash or not. An update whose acknowledgement was lost to a
crash is still in ``updates`` and is sent again with the same key: at least once, deduplicable.

All methods are synchronous, short, and guarded by one lock: the bus calls :meth:`enqueue` from
whatever thread publishes, the delivery loop calls the rest from the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightd_shared.remote import DeadLetter

__all__ = ["Outbox", "PendingUpdate", "encode_body"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS updates_server_seq ON updates (server, seq);
CREATE TABLE IF NOT EXISTS sequences (
    server TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    status_code INTEGER,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """One undelivered update as stored: what to send and how often it was tried."""

    id: int
    server: str
    seq: int
    idempotency_key: str
    content: bytes
    """The body exactly as stored (compact JSON, as :func:`encode_body` wrote it): the request
    body sent to the remote, byte for byte, so no send decodes and encodes it again."""
    created_at: float
    attempts: int
    next_attempt_at: float

    @property
    def body(self) -> dict[str, Any]:
        """The body as a dict (for logs, tests and tooling; delivery sends :attr:`content`)."""
        body: dict[str, Any] = json.loads(self.content)
        return body


def encode_body(body: dict[str, Any]) -> str:
    """The one encoding of a body, stored and sent: compact separators, keys in the body's own
    order, ASCII only (``json.dumps`` escapes the rest)."""
    return json.dumps(body, separators=(",", ":"))


def _to_datetime(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Outbox:
    """Pending updates, per-server sequences and dead letters in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(sequences)")}
        if "last_event" not in columns:  # an outbox of an older agent: the column is new
            self._db.execute("ALTER TABLE sequences ADD COLUMN last_event INTEGER")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------

    def enqueue(self, server: str, body: dict[str, Any], *, now: float | None = None) -> int:
        """Store one update with the server's next sequence number; return that number.

        Committed (and fsynced) before it returns: the update survives a crash from here on.
        """
        created = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute(
                "SELECT last_seq FROM sequences WHERE server = ?", (server,)
            ).fetchone()
            seq = (int(row["last_seq"]) if row else 0) + 1
            db.execute(
                "INSERT INTO sequences (server, last_seq) VALUES (?, ?) "
                "ON CONFLICT (server) DO UPDATE SET last_seq = excluded.last_seq",
                (server, seq),
            )
            db.execute(
                "INSERT INTO updates (server, seq, idempotency_key, body, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0)",
                (server, seq, uuid.uuid4().hex, encode_body(body), created),
            )
        return seq

    def enqueue_many(self, updates: list[tuple[str, dict[str, Any], float, int]]) -> list[int]:
        """Store ``(server, body, created at, event id)`` updates in one transaction (one
        fsync for all of them); return their sequence numbers, in order.

        Each server's ``last_event`` is set to the highest event id stored for it, in the same
        commit: at start, an event written ahead in a state file with a higher id is one this
        outbox never got (see :meth:`last_events`).
        """
        seqs: list[int] = []
        with self._transaction() as db:
            last: dict[str, tuple[int, int]] = {}
            for server, body, created, event_id in updates:
                if server not in last:
                    row = db.execute(
                        "SELECT last_seq FROM sequences WHERE server = ?", (server,)
                    ).fetchone()
                    last[server] = ((int(row["last_seq"]) if row else 0), 0)
                seq = last[server][0] + 1
                last[server] = (seq, max(last[server][1], event_id))
                db.execute(
                    "INSERT INTO updates (server, seq, idempotency_key, body, created_at, "
                    "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0)",
                    (server, seq, uuid.uuid4().hex, encode_body(body), created),
                )
                seqs.append(seq)
            db.executemany(
                "INSERT INTO sequences (server, last_seq, last_event) VALUES (?, ?, ?) "
                "ON CONFLICT (server) DO UPDATE SET last_seq = excluded.last_seq, "
                "last_event = MAX(COALESCE(last_event, 0), excluded.last_event)",
                [(server, seq, event) for server, (seq, event) in last.items()],
            )
        return seqs

    def last_events(self) -> dict[str, int]:
        """The highest lifecycle event id stored per server (0 for rows of older agents)."""
        with self._lock:
            rows = self._db.execute("SELECT server, last_event FROM sequences").fetchall()
        return {row["server"]: int(row["last_event"] or 0) for row in rows}

    def acknowledge(self, update_id: int) -> None:
        """The remote acknowledged the update: delete it so it is never sent again."""
        with self._transaction() as db:
            db.execute("DELETE FROM updates WHERE id = ?", (update_id,))

    def acknowledge_many(self, updates: Collection[PendingUpdate]) -> None:
        """Delete every acknowledged update in one commit (one fsync for all of them)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM updates WHERE id = ?", [(u.id,) for u in updates])

    def retry_later(self, update_id: int, at: float, error: str) -> None:
        """Count a failed attempt and set when the update may be tried next."""
        with self._transaction() as db:
            db.execute(
                "UPDATE updates SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ?",
                (at, error, update_id),
            )

    def dead_letter(
        self, update: PendingUpdate, *, status_code: int | None, reason: str, now: float
    ) -> int:
        """Move an update the remote refused for good to the dead letters; return its id."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO dead_letters (server, seq, idempotency_key, body, created_at, "
                "failed_at, attempts, status_code, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    update.server,
                    update.seq,
                    update.idempotency_key,
                    update.content.decode("utf-8"),
                    update.created_at,
                    now,
                    update.attempts + 1,
                    status_code,
                    reason,
                ),
            )
            db.execute("DELETE FROM updates WHERE id = ?", (update.id,))
            return int(cursor.lastrowid or 0)

    def replay(self, dead_letter_id: int) -> bool:
        """Put a dead letter back in the queue, same sequence and key; ``False`` if unknown."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM dead_letters WHERE id = ?", (dead_letter_id,)
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "INSERT INTO updates (server, seq, idempotency_key, body, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0)",
                (row["server"], row["seq"], row["idempotency_key"], row["body"], row["created_at"]),
            )
            db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_letter_id,))
            return True

    def discard_dead_letter(self, dead_letter_id: int) -> bool:
        """Forget a dead letter for good; ``False`` if unknown."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_letter_id,))
            return cursor.rowcount > 0

    def make_all_due(self, now: float) -> None:
        """Cut every backoff short (the remote is back, or the agent just started)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE updates SET next_attempt_at = ? WHERE next_attempt_at > ?", (now, now)
            )

    # -- reading -------------------------------------------------------------------------

    def due(self, now: float) -> list[PendingUpdate]:
        """The head (lowest sequence) of each server's queue, if it may be tried now.

        Only heads are returned, so a server's updates go out strictly one after another.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT u.* FROM updates u JOIN "
                "(SELECT server, MIN(seq) AS seq FROM updates GROUP BY server) h "
                "ON u.server = h.server AND u.seq = h.seq "
                "WHERE u.next_attempt_at <= ? ORDER BY u.id",
                (now,),
            ).fetchall()
        return [self._pending(row) for row in rows]

    def first(self, server: str, limit: int) -> list[PendingUpdate]:
        """``server``'s ``limit`` oldest undelivered updates (due or not), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM updates WHERE server = ? ORDER BY seq LIMIT ?", (server, limit)
            ).fetchall()
        return [self._pending(row) for row in rows]

    def after(self, server: str, seq: int, limit: int) -> list[PendingUpdate]:
        """``server``'s undelivered updates numbered above ``seq``, oldest first (read-ahead)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM updates WHERE server = ? AND seq > ? ORDER BY seq LIMIT ?",
                (server, seq, limit),
            ).fetchall()
        return [self._pending(row) for row in rows]

    def next_attempt_at(self, excluding: Collection[str] = ()) -> float | None:
        """When the earliest queue head may be tried, or ``None`` when nothing is pending.

        ``excluding``: servers whose head is being delivered right now (not waited for).
        """
        skip = sorted(excluding)
        where = f" WHERE u.server NOT IN ({', '.join('?' * len(skip))})" if skip else ""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(u.next_attempt_at) AS at FROM updates u JOIN "
                "(SELECT server, MIN(seq) AS seq FROM updates GROUP BY server) h "
                "ON u.server = h.server AND u.seq = h.seq" + where,
                skip,
            ).fetchone()
        return None if row is None or row["at"] is None else float(row["at"])

    def depth(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) AS n FROM updates").fetchone()
        return int(row["n"])

    def oldest_created_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) AS t FROM updates").fetchone()
        return None if row["t"] is None else float(row["t"])

    def pending(self) -> list[PendingUpdate]:
        """Every undelivered update, per server in sequence order (for tests and tooling)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM updates ORDER BY server, seq").fetchall()
        return [self._pending(row) for row in rows]

    def dead_letter_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) AS n FROM dead_letters").fetchone()
        return int(row["n"])

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()
        return [
            DeadLetter(
                id=int(row["id"]),
                server=row["server"],
                sequence=int(row["seq"]),
                idempotency_key=row["idempotency_key"],
                body=json.loads(row["body"]),
                created_at=_to_datetime(row["created_at"]),
                failed_at=_to_datetime(row["failed_at"]),
                attempts=int(row["attempts"]),
                status_code=row["status_code"],
                reason=row["reason"],
            )
            for row in rows
        ]

    @staticmethod
    def _pending(row: sqlite3.Row) -> PendingUpdate:
        return PendingUpdate(
            id=int(row["id"]),
            server=row["server"],
            seq=int(row["seq"]),
            idempotency_key=row["idempotency_key"],
            content=row["body"].encode("utf-8"),
            created_at=float(row["created_at"]),
            attempts=int(row["attempts"]),
            next_attempt_at=float(row["next_attempt_at"]),
        )
