"""The console of a server: one line to its stdin, and its output followed and throttled.

- :meth:`Console.send` writes ``command + "\\n"`` to the running server's stdin through the
  backend (Docker's attach, not an exec). Refusals, each its own words: the server is not
  running (409), its container was made before the console existed and has no open stdin
  (409: a reinstall enables it), Docker refused the write (409).
- :meth:`Console.shaper` is what every follow of a server's output reads through: a backlog of
  ``console.backlog`` lines (``?tail=N`` up to ``console.max_backlog``), then at most
  ``console.throttle_lines`` lines per ``console.throttle_period`` for *all* the follows of
  that server together (one :class:`~lightd_agent.backend.lines.LineBudget` per server), lines
  over ``console.max_line`` bytes cut and marked.
- :func:`sse_events` turns a follow into Server-Sent Events: ``event: log`` per line,
  ``event: dropped`` ``{"lines": N}`` where the throttle dropped lines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from lightd_agent.backend.base import EngineError
from lightd_agent.backend.lines import Dropped, LineBudget, LineShaper, Shaped
from lightd_agent.config import ConsoleSection
from lightd_agent.errors import BadRequest, Conflict, Unavailable
from lightd_agent.servers.manager import ServerManager
from lightd_agent.servers.power import locate
from lightd_shared.commands import CommandStatus, ConsoleCommand
from lightd_shared.console import ConsoleSent, DroppedLines

__all__ = ["Console", "console_command", "sse_events"]


class Console:
    """Console input and the throttle of every follow, for one agent's servers."""

    def __init__(self, settings: ConsoleSection, manager: ServerManager) -> None:
        self.settings = settings
        self.manager = manager
        self._budgets: dict[str, LineBudget] = {}

    def backlog(self, tail: int | None) -> int:
        """The backlog a follow starts with: ``tail``, or ``console.backlog`` when not given."""
        if tail is None:
            return self.settings.backlog
        if tail > self.settings.max_backlog:
            raise BadRequest(
                f"tail: a follow starts with at most {self.settings.max_backlog} lines of past "
                "output (console.max_backlog)"
            )
        return tail

    def shaper(self, server_id: str, backlog: int) -> LineShaper:
        """A new follow of ``server_id``: its backlog free, then the server's shared budget."""
        budget = self._budgets.get(server_id)
        if budget is None:
            budget = LineBudget(
                self.settings.throttle_lines, self.settings.throttle_period.total_seconds()
            )
            self._budgets[server_id] = budget
        return LineShaper(budget, self.settings.max_line, free=backlog)

    async def follow(self, server_id: str, tail: int | None) -> AsyncIterator[Shaped]:
        """The server's output: the backlog, then live lines, throttled (``?follow=true``)."""
        backlog = self.backlog(tail)
        self.manager.get(server_id)
        return await self.manager.follow_logs(
            server_id, backlog, shaper=self.shaper(server_id, backlog)
        )

    async def send(self, server_id: str, command: str) -> ConsoleSent:
        """Write one line to the server's stdin; answers once Docker took it."""
        server = self.manager.get(server_id)
        backend = self.manager.backend
        if not backend.available:
            raise Unavailable(backend.unavailable_message())
        if server.state != "running":
            raise Conflict(
                f"server {server_id!r} is {server.state}; the console needs it running "
                f"(start it: POST /containers/{server_id}/start)"
            )
        container = await locate(backend, server)
        if not container.running:
            raise Conflict(f"server {server_id!r} is not running; the console needs it running")
        if not container.stdin_open:
            raise Conflict(
                f"server {server_id!r} was created before the console existed: its container "
                f"has no open stdin. Reinstall it (POST /containers/{server_id}/reinstall; the "
                "volume is kept) to enable the console"
            )
        data = (command + "\n").encode("utf-8")
        try:
            await backend.write_stdin(container.id, data)
        except EngineError as exc:
            raise Conflict(
                f"writing to the console of server {server_id!r} failed: {exc.explanation}"
            ) from exc
        return ConsoleSent(id=server_id, bytes=len(data))


async def sse_events(items: AsyncIterator[Shaped]) -> AsyncIterator[dict[str, str]]:
    """A follow as SSE messages: ``log`` per line, ``dropped`` ``{"lines": N}``."""
    async for item in items:
        if isinstance(item, Dropped):
            yield {
                "event": "dropped",
                "data": DroppedLines(lines=item.lines).model_dump_json(),
            }
        else:
            yield {"event": "log", "data": item}


async def console_command(
    manager: ServerManager, command: ConsoleCommand
) -> tuple[CommandStatus, str, None]:
    """A coordinator's ``container console`` command: the same as the REST route."""
    server = command.params.server
    sent = await Console(manager.config.console, manager).send(server, command.params.command)
    return "success", f"{server}: sent {sent.bytes} bytes to the console", None
