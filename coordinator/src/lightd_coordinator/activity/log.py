"""What goes into the activity log, decided once above any store; and what never does.

An entry holds who (the token's subject; a command's own ``user`` when it names one), what (an
action word), where (node, server), how it ended (HTTP status or command status), when, and the
request id. Never a token, a body (so never a container spec or its env values), a query string
or a command's output: a request entry is built from the method, the route's template and its
path parameters alone, a command entry from the command's type, action and server. An exec's
shell text may hold secrets (``mysql -pSECRET``), so it is summarised
(:func:`~lightd_shared.activity.shell_summary`: program, length, SHA-256), never kept.

Every dispatched command is recorded, reads too. With ``activity.record_reads: false`` the
read-only container commands (:data:`READ_ONLY_ACTIONS`: ``list``, ``status``, ``logs``, the file
reads, ``quota.get``, ``backup.list|get``, ``schedules.list``) are left out, for a fleet whose
dashboards would push everything else out of the bounded log. A file write is recorded with its
server, never its content.

Recording never fails a request: a store that cannot be written (Redis down) is logged, once
per outage, and the entry counted in :attr:`ActivityLog.dropped`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from lightd_coordinator.activity.base import ActivityStore, Draft
from lightd_coordinator.activity.context import Note
from lightd_coordinator.config import ActivitySettings
from lightd_shared.activity import ActivityPage, ActivityQuery, shell_summary
from lightd_shared.commands import CommandResult
from lightd_shared.timestamps import format_timestamp, utcnow

__all__ = ["READ_ONLY_ACTIONS", "ActivityLog"]

log = logging.getLogger(__name__)

READ_ONLY_ACTIONS = frozenset(
    {
        "list",
        "status",
        "logs",
        "files.list",
        "files.detailed",
        "files.read",
        "files.search",
        "quota.get",
        "backup.list",
        "backup.get",
        "schedules.list",
    }
)
"""Container actions that change nothing: left out with ``activity.record_reads: false``."""

_TEXT = 255


def _bounded(value: Any) -> str | None:
    return None if value is None else str(value)[:_TEXT]


def _resolve(group: list[tuple[Draft, asyncio.Future[None]]]) -> None:
    for _, stored in group:
        if not stored.done():
            stored.set_result(None)


class ActivityLog:
    def __init__(
        self,
        store: ActivityStore,
        settings: ActivitySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.enabled = settings.enabled
        self.record_reads = settings.record_reads
        self.retention = settings.retention
        self.max_entries = settings.max_entries
        self.clock = clock
        """The time entries are stamped with and retention counts from (tests inject one)."""
        self.dropped = 0
        self._failing = False
        self._waiting: list[tuple[Draft, asyncio.Future[None]]] = []
        """Entries for the running group writer's next call, each with its caller's wait."""
        self._writer: asyncio.Task[None] | None = None

    async def _append(self, draft: dict[str, Any]) -> None:
        if not self.enabled:
            return
        draft["time"] = format_timestamp(self.clock())
        clean = {key: value for key, value in draft.items() if value is not None}
        if not self.store.grouped:  # memory: appending costs less than grouping would
            await self._store(self.store.append(clean, keep=self.max_entries), 1)
            return
        # Group commit: the entry waits for the one writer's next call, which takes every
        # entry queued meanwhile (requests that end together: one round trip for all). The
        # caller still returns only once its entry is stored (or counted dropped).
        loop = asyncio.get_running_loop()
        writer = self._writer
        if writer is not None and writer.get_loop() is not loop:
            # a writer of a loop that is gone (tests): its callers went with it
            writer, left, self._waiting = None, self._waiting, []
            self.dropped += len(left)
        stored = loop.create_future()
        self._waiting.append((clean, stored))
        if writer is None:
            writer = self._writer = loop.create_task(self._write_groups(), name="activity-writer")
            writer.add_done_callback(self._writer_done)
        await asyncio.shield(stored)  # a caller that gives up leaves its entry to be written

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    drafts = [draft for draft, _ in group]
                    await self._store(
                        self.store.append_many(drafts, keep=self.max_entries), len(drafts)
                    )
                except BaseException:
                    # cancelled mid-write (shutdown): the group may not be stored; counted
                    self._drop_waiting(group)
                    raise
                _resolve(group)
        finally:  # normally nothing is left; cancelled: what still waits is dropped
            left, self._waiting = self._waiting, []
            self._drop_waiting(left)
            self._writer = None

    def _writer_done(self, writer: asyncio.Task[None]) -> None:
        # a writer cancelled before its first step never ran its ``finally``
        if self._writer is writer:
            self._writer, left, self._waiting = None, self._waiting, []
            self._drop_waiting(left)

    def _drop_waiting(self, group: list[tuple[Draft, asyncio.Future[None]]]) -> None:
        """Count ``group`` as not recorded and let its callers go on."""
        self.dropped += len(group)
        _resolve(group)

    async def _store(self, write: Awaitable[object], entries: int) -> None:
        """Await the store's ``write`` of ``entries`` entries; a failure drops and counts them."""
        try:
            await write
        except Exception as exc:
            self.dropped += entries
            if not self._failing:
                log.warning("activity log entry not recorded: %s", exc)
            self._failing = True
            return
        self._failing = False

    async def request(
        self,
        note: Note,
        *,
        method: str,
        route: str,
        action: str,
        status: int,
        params: Mapping[str, Any],
    ) -> None:
        """A mutating API call ended with ``status``."""
        await self._append(
            {
                "kind": "request",
                "action": action,
                "outcome": str(status),
                "user": _bounded(note.user),
                "subject": _bounded(note.subject),
                "node": _bounded(params.get("node_id") or note.node),
                "server": _bounded(params.get("server") or note.server),
                "method": method,
                "route": route[:_TEXT],
                "request_id": note.request_id,
            }
        )

    async def command(self, result: CommandResult, note: Note | None) -> None:
        """A dispatched command ended (``note``: the request that sent it, when known here)."""
        echo = result.command
        if echo is None:
            return
        params = echo.params.model_extra or {}
        shell: Any = None
        server: Any = params.get("server")
        if echo.type == "exec":
            action = "exec"
            shell = shell_summary(echo.action).model_dump()
        else:
            if not self.record_reads and echo.action in READ_ONLY_ACTIONS:
                return
            # a file action is named as is (files.write), the others container.<action>
            action = echo.action if echo.action.startswith("files.") else f"container.{echo.action}"
            command = params.get("command")
            if echo.action == "exec" and isinstance(command, str | list):
                shell = shell_summary(
                    [str(word) for word in command] if isinstance(command, list) else command
                ).model_dump()
            spec = params.get("spec")
            if server is None and isinstance(spec, dict):
                server = spec.get("id")
        subject = note.subject if note is not None else None
        await self._append(
            {
                "kind": "command",
                "action": action,
                "outcome": result.status,
                "user": _bounded(echo.user or subject),
                "subject": _bounded(subject),
                "node": _bounded(result.node_id),
                "server": _bounded(server),
                "request_id": note.request_id if note is not None else None,
                "command_id": _bounded(result.id),
                "shell": shell,
            }
        )

    async def read(self, query: ActivityQuery) -> ActivityPage:
        """One page, newest first; ``next_before`` when older entries may match."""
        entries = await self.store.page(query, query.limit + 1)
        more = len(entries) > query.limit
        entries = entries[: query.limit]
        return ActivityPage(
            entries=entries, next_before=entries[-1].id if more and entries else None
        )

    async def expire(self) -> int:
        """Forget the entries older than ``activity.retention``."""
        return await self.store.purge(self.clock() - self.retention)
