"""What a task does: one small interface, and its implementation against the real agent.

:class:`TaskActions` is all the runner knows of the agent. :class:`AgentTaskActions` does it
with the agent's own parts: ``power`` through the server manager (the same code, policy and
gate as ``POST /containers/{id}/{action}``), ``console`` through the console's stdin writer
(the same checks as ``POST /containers/{id}/console``), ``backup`` through the backup service
(as ``POST /containers/{id}/backups``, then waiting for the backup to end: the task fails when
the backup does, with its error).
"""

from __future__ import annotations

from typing import Protocol

from lightd_agent.backups import BackupService
from lightd_agent.console.service import Console
from lightd_agent.errors import AgentError
from lightd_agent.events import EventBus
from lightd_agent.servers import ServerManager

__all__ = ["AgentTaskActions", "TaskActions", "TaskFailed"]

POWER_TIMEOUT = 10.0
"""Seconds a stop or restart task gives the server before it is killed (the API's default)."""


class TaskFailed(Exception):
    """The task did not do what it says; the message is the task's ``error``."""


class TaskActions(Protocol):
    """The agent as the task runner sees it. Each action raises :class:`TaskFailed`."""

    def state(self, server: str) -> str | None:
        """The server's state word (``running``, ``stopped``, ...), ``None`` if it is unknown."""
        ...

    async def power(self, server: str, action: str) -> None: ...

    async def console(self, server: str, line: str) -> None: ...

    async def backup(self, server: str) -> None: ...


class AgentTaskActions:
    """:class:`TaskActions` on the real agent."""

    def __init__(
        self, manager: ServerManager, bus: EventBus, console: Console, backups: BackupService
    ) -> None:
        self.manager = manager
        self.bus = bus
        self.console_writer = console
        self.backups = backups

    def state(self, server: str) -> str | None:
        found = self.manager.servers.get(server)
        return None if found is None else found.state

    async def power(self, server: str, action: str) -> None:
        reason = self.bus.refusal()
        if reason:
            raise TaskFailed(f"lifecycle actions are refused right now: {reason}")
        try:
            await self.manager.power(server, action, POWER_TIMEOUT)
        except AgentError as exc:
            raise TaskFailed(exc.message) from None

    async def console(self, server: str, line: str) -> None:
        try:
            await self.console_writer.send(server, line)
        except AgentError as exc:
            raise TaskFailed(exc.message) from None

    async def backup(self, server: str) -> None:
        try:
            info = await self.backups.create_and_wait(server, [])
        except AgentError as exc:
            raise TaskFailed(exc.message) from None
        if info.state != "completed":
            raise TaskFailed(f"backup {info.id} {info.state}: {info.error or 'no reason given'}")
