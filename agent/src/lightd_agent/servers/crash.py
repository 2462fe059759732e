"""Crash watching and the restart policy.

Docker's events for this node's containers arrive through the backend's watch
(:class:`~lightd_agent.backend.base.EngineEvent`). A ``die`` of a server's container while the
server is ``running`` and nobody asked is a crash: ``Crashed`` is published, then the server's
``restart_policy`` decides whether it starts again (at most ``max_restarts`` in ``window``).
An ``oom`` event comes before its ``die``; the watcher remembers it for that container so the
crash can say "out of memory".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from lightd_agent.backend.base import Backend, EngineEvent, from_nanoseconds
from lightd_agent.errors import AgentError
from lightd_agent.servers.machine import Cause, Machine
from lightd_agent.servers.model import Registry, Server
from lightd_agent.servers.power import Power

__all__ = ["CrashWatcher", "restart_allowed"]

log = logging.getLogger(__name__)


def restart_allowed(server: Server, now: float) -> bool:
    """Forget restarts older than the policy's window; may the server restart once more?"""
    policy = server.spec.restart_policy
    window = policy.window.total_seconds()
    while server.restarts and now - server.restarts[0] > window:
        server.restarts.popleft()
    return policy.enabled and len(server.restarts) < policy.max_restarts


class CrashWatcher:
    """Turns container exits into crashes and applies the restart policy."""

    def __init__(
        self,
        backend: Backend,
        machine: Machine,
        registry: Registry,
        power: Power,
        spawn: Callable[[Coroutine[Any, Any, None], str], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.machine = machine
        self.registry = registry
        self.power = power
        self._spawn = spawn
        self._clock = clock
        self._oom: set[str] = set()
        """Containers that ran out of memory since their last exit (the owner of that fact)."""

    def on_event(self, event: EngineEvent) -> None:
        """Called on the loop for every engine event; never raises."""
        try:
            if event.role != "server":
                return
            server = self.registry.servers.get(event.server)
            if server is None:
                return
            if event.action == "oom":
                self._oom.add(event.container_id)
            elif event.action == "die":
                self._spawn(self._on_die(server, event), f"die:{server.id}")
        except Exception:  # one odd event must never end the stream
            log.exception("could not handle engine event %r", event)

    async def _on_die(self, server: Server, event: EngineEvent) -> None:
        """A container exited: a crash if its server is ``running`` and nobody asked.

        Docker's ``die`` event carries the exit code and the time it happened, so the crash is
        published from the event alone: inspecting first would wait on the engine's clean-up
        of the dead container (50-120 ms) before anyone hears of it. Only an event without
        those fields falls back to an inspect.
        """
        try:
            async with server.lock:
                try:
                    await self._exited(server, event)
                finally:  # the next action on this server sees the crash durable
                    await self.machine.settled()
        finally:
            self._oom.discard(event.container_id)

    async def _exited(self, server: Server, event: EngineEvent) -> None:
        if not self.registry.registered(server) or server.state != "running":
            return  # stopped, killed, restarted or deleted by the agent: not a crash
        known = server.container_id
        if known and event.container_id and event.container_id != known:
            return  # an exit of an older container of this server
        exit_code = event.exit_code
        # read once the lock is held: the engine may report the oom just after the die
        oom = event.container_id in self._oom
        try:
            if exit_code is not None and event.time_ns is not None:
                died_at = from_nanoseconds(event.time_ns)
                if server.started_at is not None and died_at < server.started_at:
                    return  # a stale event from before the last start
                server.finished_at = died_at
                if exit_code == 137 and not oom and server.spec.limits.memory is not None:
                    # SIGKILL with a memory limit: ask whether the kernel's OOM killer did it
                    info = await self.backend.inspect(
                        event.container_id, what="inspecting a container that exited"
                    )
                    oom = info is not None and info.oom_killed
            else:
                info = await self.backend.inspect(
                    event.container_id, what="inspecting a container that exited"
                )
                if info is not None:
                    if info.running:
                        return  # a stale event from before the last start
                    oom = oom or info.oom_killed
                    server.finished_at = info.finished_at
                    if exit_code is None:
                        exit_code = info.exit_code
            await self.crashed(server, exit_code, oom=oom)
        except AgentError as exc:
            log.warning("handling the exit of server %s failed: %s", server.id, exc.message)
        except Exception:
            log.exception("handling the exit of server %s failed", server.id)

    async def crashed(self, server: Server, exit_code: int | None, *, oom: bool) -> None:
        """Mark a crash, then apply the server's restart policy (the lock is held)."""
        why = f"exited unexpectedly with code {exit_code}"
        if oom:
            why += " (killed: out of memory, raise limits.memory)"
        server.exit_code = exit_code
        self.machine.move(server, Cause.CRASH, data=why, exit_code=exit_code)
        policy = server.spec.restart_policy
        now = self._clock()
        if not restart_allowed(server, now):
            window = int(policy.window.total_seconds())
            log.warning(
                "server %s crashed (%s) and stays crashed: %d restarts in %s already",
                server.id,
                why,
                len(server.restarts),
                policy.window,
            )
            server.error = (
                f"{why}; not restarted: the restart policy allows {policy.max_restarts} "
                f"restarts in {window}s"
                if policy.enabled
                else f"{why}; not restarted: the restart policy is disabled"
            )
            self.machine.save(server)
            return
        server.restarts.append(now)
        log.info(
            "server %s crashed (%s); restarting (%d of %d in the window)",
            server.id,
            why,
            len(server.restarts),
            policy.max_restarts,
        )
        try:
            await self.power.start_locked(server)
        except AgentError as exc:
            self.power.failed(server, exc, "restarting after a crash")
