"""One sqlite3 connection to a file, shared code of the ``sqlite`` stores.

One connection guarded by a lock, called through ``asyncio.to_thread`` so the event loop never
waits on the disk. WAL journaling keeps writes cheap; every operation is one transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error), so a crash never leaves half a
change behind. Several stores open the same file (the registry, the resource history, the
activity log), each with its own connection and tables; ``timeout`` is how long one waits for
another's write.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["SqliteFile"]

T = TypeVar("T")


class SqliteFile:
    """The file at ``path`` with ``schema`` applied on open; ``what`` names it in errors."""

    def __init__(self, path: str | Path, *, schema: str, what: str, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.schema = schema
        self.what = what
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open_sync(self) -> None:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # owner-only from the start: the registry's file holds the nodes' dispatch keys
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=self.timeout
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(self.schema)
        self._conn = conn

    async def open(self) -> None:
        await asyncio.to_thread(self.open_sync)

    def close_sync(self) -> None:
        # Under the lock: a worker thread may still be inside a transaction (a cancelled
        # ``asyncio.to_thread`` call keeps running), and closing a connection another thread
        # is using crashes the sqlite3 module rather than raising.
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction, in a worker thread; its value."""

        def call() -> T:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise RuntimeError(f"the sqlite {self.what} is not open")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return value

        return await asyncio.to_thread(call)
