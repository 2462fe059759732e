"""A server's states, the transitions allowed between them, and the one function that moves one.

The states are the wire's words, exactly: ``installing, ready, running, stopping, stopped,
crashed, failed``. A transition is *(state, cause) -> (next state, event)*: every allowed one is
a row of :data:`TRANSITIONS`, and :meth:`Machine.move` is the only code that changes a
server's state. It looks the row up (an illegal transition raises :class:`IllegalTransition`:
a bug, never an answer), persists the server's state file, then publishes the row's lifecycle
event on the bus, once (or none, for the rows without one).

A state file that cannot be written (disk full, read-only) never loses a change: the event is
still published (remote sync keeps it even if its own outbox cannot take it yet), the server
is kept as *unsaved* and written again every second, and while anything is unsaved the
machine, a gate on the bus, refuses new lifecycle actions (503 with the reason) and
``/health`` says ``degraded``.

``docs/architecture.md`` shows the same table; a test checks it against this one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from lightd_agent.events import EventBus, LifecycleEvent, LifecycleKind
from lightd_agent.servers.model import Server
from lightd_agent.servers.writer import DurableWriter, WriteOutcome
from lightd_agent.state import StateStore
from lightd_shared.containers import ContainerState

__all__ = [
    "STATES",
    "TRANSITIONS",
    "Cause",
    "IllegalTransition",
    "Machine",
    "Rule",
    "table_markdown",
]

log = logging.getLogger(__name__)

STATES: Final[tuple[ContainerState, ...]] = (
    "installing",
    "ready",
    "running",
    "stopping",
    "stopped",
    "crashed",
    "failed",
)


class Cause(StrEnum):
    """Why a server's state changes (the input of the machine)."""

    INSTALL = "install"
    """An install begins (``POST /containers``)."""
    REINSTALL = "reinstall"
    """A reinstall begins (the volume is kept)."""
    CREATE_CONTAINER = "create-container"
    """The install script (if any) succeeded; the server's container is being created."""
    INSTALLED = "installed"
    """The container exists: the server is ready to start."""
    START = "start"
    """A start (asked for, after an install, or by the restart policy) succeeded."""
    FOUND_RUNNING = "found-running"
    """Recovery found the server's container running."""
    STOP = "stop"
    """A stop or kill was asked for (also before a reinstall of a running server)."""
    STOPPED = "stopped"
    """The container exited after a stop, kill, or while the agent was away from a stop."""
    CRASH = "crash"
    """The container exited while running and nobody asked."""
    RESYNC_RUNNING = "resync-running"
    """A stop failed and Docker says (or cannot say otherwise) the container still runs."""
    RESYNC_STOPPED = "resync-stopped"
    """A stop failed but Docker says the container is not running."""
    ACTION_FAILED = "action-failed"
    """A power action (or the start after an install/crash) failed: the state stays."""
    FAIL = "fail"
    """The server cannot run until reinstalled: install failed or cut off, container removed
    outside the agent, stored spec refused by the policy."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowed transition: the state after it, and the event it publishes (if any)."""

    to: ContainerState | None
    """``None``: the state stays what it was."""
    kind: LifecycleKind | None


def _rows() -> dict[tuple[ContainerState, Cause], Rule]:
    table: dict[tuple[ContainerState, Cause], Rule] = {}

    def allow(
        sources: tuple[ContainerState, ...],
        cause: Cause,
        to: ContainerState | None,
        kind: LifecycleKind | None,
    ) -> None:
        for source in sources:
            table[(source, cause)] = Rule(to, kind)

    allow(("installing",), Cause.INSTALL, "installing", "Started")
    allow(
        ("installing", "ready", "stopping", "stopped", "crashed", "failed"),
        Cause.REINSTALL,
        "installing",
        "ReinstallStarted",
    )
    allow(("installing",), Cause.CREATE_CONTAINER, "installing", "CreatingContainer")
    allow(("installing",), Cause.INSTALLED, "ready", "Ready")
    allow(("ready", "stopped", "crashed"), Cause.START, "running", "Running")
    allow(
        ("ready", "stopping", "stopped", "crashed", "failed"),
        Cause.FOUND_RUNNING,
        "running",
        "Running",
    )
    allow(("running",), Cause.STOP, "stopping", None)
    allow(("stopping", "crashed"), Cause.STOPPED, "stopped", "Stopped")
    allow(("running",), Cause.CRASH, "crashed", "Crashed")
    allow(("stopping",), Cause.RESYNC_RUNNING, "running", None)
    allow(("stopping",), Cause.RESYNC_STOPPED, "stopped", None)
    allow(("ready", "running", "stopped", "crashed", "failed"), Cause.ACTION_FAILED, None, "Error")
    allow(STATES, Cause.FAIL, "failed", "Error")
    return table


TRANSITIONS: Final[dict[tuple[ContainerState, Cause], Rule]] = _rows()
"""Every allowed transition: ``(state, cause) -> Rule(next state, event)``."""


class IllegalTransition(RuntimeError):
    """A transition the table does not allow: a bug in the agent, never a user's mistake."""


class Machine:
    """Moves servers through :data:`TRANSITIONS`: check, persist, publish once."""

    def __init__(
        self, store: StateStore, bus: EventBus, registered: Callable[[Server], bool]
    ) -> None:
        self.store = store
        self.bus = bus
        self._registered = registered
        self.storage_error: str | None = None
        self._unsaved: dict[str, Server] = {}
        self._submitted: dict[str, Server] = {}  # the server object of each write in flight
        self.writer = DurableWriter(store, bus, self._written)
        bus.set_ordered_path(self.writer.commit_now)  # other publishers keep the writer's order

    def move(
        self,
        server: Server,
        cause: Cause,
        *,
        error: str | None = None,
        data: str | None = None,
        exit_code: int | None = None,
    ) -> Rule:
        """Apply ``cause`` to ``server``; the only place a server's state changes.

        ``error`` is the wire's error word of an ``Error`` event (``failed``/``timeout``),
        ``data`` what happened in words for an operator (kept as the server's ``error``).
        """
        rule = TRANSITIONS.get((server.state, cause))
        if rule is None:
            raise IllegalTransition(
                f"server {server.id!r}: no transition from {server.state!r} on {cause.value!r}"
            )
        if rule.to is not None:
            server.state = rule.to
        if rule.kind in ("Error", "Crashed"):
            server.error = data
        elif server.state in ("installing", "ready", "running") or cause is Cause.STOPPED:
            server.error = None
        if rule.kind == "Error":
            if cause is Cause.FAIL:
                log.error("server %s failed: %s", server.id, data)
            else:
                log.error("server %s: %s", server.id, data)
        event = None
        if rule.kind is not None:
            event = self.bus.number(
                LifecycleEvent(
                    server=server.id,
                    kind=rule.kind,
                    state=server.state,
                    error=(error or "failed") if rule.kind == "Error" else None,
                    data=data,
                    exit_code=exit_code,
                )
            )
        self._submit(server, event)
        return rule

    def save(self, server: Server) -> None:
        """Persist the server's fields (no state change, no event): bookkeeping.

        A failed write keeps the server as unsaved (written again by :meth:`retry_unsaved`).
        """
        self._submit(server, None)

    def _submit(self, server: Server, event: LifecycleEvent | None) -> None:
        """Hand the server's record (and its event) to the one writer: the state file, then
        every outbox, then the event is fanned out (``servers/writer.py``). An event of a
        server no longer registered (deleted meanwhile) is still persisted and published."""
        if self._registered(server):
            self._submitted[server.id] = server
            self.writer.submit(server.id, server.record(), event)
        elif event is not None:
            self.writer.submit(server.id, None, event)

    async def settled(self) -> None:
        """Wait until every change so far is durable and published (before answering)."""
        await self.writer.settled()

    async def save_new(self, server: Server) -> None:
        """Write a server's first state file before it is known (raises ``OSError``).

        Through the writer like every other write (after a delete of the same id queued
        before it), not the default thread pool, where it would queue behind Docker calls.
        """
        reply: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
        self.writer.submit(server.id, server.record(), None, reply=reply)
        error = await reply
        if error is not None:
            raise error

    def _written(self, outcome: WriteOutcome) -> None:
        """After each group (on the event loop): keep what failed as unsaved."""
        for server_id, exc in outcome.items():
            server = self._submitted.pop(server_id, None)
            if exc is not None:
                if server is not None and self._registered(server):
                    self._unsaved[server_id] = server
                self.storage_failed(exc)
            else:
                self._unsaved.pop(server_id, None)
        if (
            not self._unsaved
            and self.storage_error is not None
            and any(exc is None for exc in outcome.values())
        ):
            self._recovered()

    def storage_failed(self, exc: OSError) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.storage_error:  # once per problem, not once per retry
            log.critical(
                "cannot write the state directory %s (%s); servers' states are kept in memory "
                "and written again every second; new lifecycle actions are refused until it "
                "is writable",
                self.store.directory,
                error,
            )
        self.storage_error = error

    def _recovered(self) -> None:
        log.warning(
            "the state directory %s is writable again; lifecycle actions are accepted again",
            self.store.directory,
        )
        self.storage_error = None

    def retry_unsaved(self) -> None:
        """Write every unsaved server again (or probe the directory when none is left)."""
        if self.storage_error is None:
            return
        for server in list(self._unsaved.values()):
            if not self._registered(server):
                self._unsaved.pop(server.id, None)
                continue
            self.save(server)  # the outcome arrives after the group: see _written
        if self._unsaved:
            return
        if self.storage_error is not None:
            try:
                self.store.probe()
            except OSError as exc:
                self.storage_failed(exc)
            else:
                self._recovered()

    def refusal(self) -> str | None:
        """Gate: why new lifecycle actions are refused while the state directory fails."""
        if self.storage_error is None:
            return None
        return (
            f"the state directory {self.store.directory} cannot be written "
            f"({self.storage_error}); {len(self._unsaved)} servers' states wait in memory; "
            "free space or fix the directory, the agent goes on by itself"
        )

    def storage_health(self) -> dict[str, object]:
        """The ``storage`` section of ``GET /health``."""
        section: dict[str, object] = {
            "state_dir": str(self.store.directory),
            "writable": self.storage_error is None,
            "unsaved": len(self._unsaved),
        }
        if self.storage_error is not None:
            section["error"] = self.storage_error
            section["degraded_reason"] = self.refusal()
        return section

    def deleted(self, server_id: str) -> None:
        """The server is gone: its file removed, ``Deleted`` published (not a state)."""
        event = self.bus.number(LifecycleEvent(server=server_id, kind="Deleted", state="deleted"))
        self._submitted.pop(server_id, None)
        self._unsaved.pop(server_id, None)
        self.writer.submit(server_id, None, event, remove=True)


def table_markdown() -> str:
    """:data:`TRANSITIONS` as the Markdown table of ``docs/architecture.md``."""
    lines = ["| from | cause | to | event |", "| --- | --- | --- | --- |"]
    for (source, cause), rule in TRANSITIONS.items():
        to = rule.to or f"{source} (stays)"
        lines.append(f"| {source} | {cause.value} | {to} | {rule.kind or '-'} |")
    return "\n".join(lines)
