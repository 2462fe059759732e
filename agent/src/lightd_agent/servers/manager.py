"""``ServerManager``: the servers of this agent, tying the machine, install, power, crash
watching, recovery and observation together, and keeping the engine connection watched.

It owns the background tasks (the watchdog, the event watch, crash handlers) and, at stop,
drains: running installs and power actions get ``grace`` seconds to finish, then what is left
is cancelled and named in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from lightd_agent.backend.base import Backend, EventWatch
from lightd_agent.backend.lines import LineShaper, Shaped
from lightd_agent.config import AgentConfig
from lightd_agent.console.install_log import InstallLogs
from lightd_agent.disks.base import DiskImages
from lightd_agent.disks.loop import LoopExt4
from lightd_agent.errors import AgentError, NotFound, Unavailable
from lightd_agent.events import EventBus
from lightd_agent.policy import check_spec
from lightd_agent.servers.crash import CrashWatcher
from lightd_agent.servers.install import Installer
from lightd_agent.servers.machine import Machine
from lightd_agent.servers.model import Registry, Server
from lightd_agent.servers.observe import Observer
from lightd_agent.servers.power import Power
from lightd_agent.servers.quota import Quotas
from lightd_agent.servers.recovery import Recovery
from lightd_agent.state import StateStore
from lightd_shared.containers import (
    CONTAINER_STATES,
    ContainerSpec,
    ContainerStats,
    ContainerView,
    ExecResult,
)
from lightd_shared.timestamps import utcnow

__all__ = ["ServerManager"]

log = logging.getLogger(__name__)

READ_SETTLE_SECONDS = 2.0
"""How long a read waits for the writer to make what it will show durable (see
:meth:`ServerManager.settle_reads`); past it, a stalled disk gets the state in memory."""

INSTALL_TAIL_SECONDS = 2.0
"""How long an action waits for an install that already left ``installing`` to end (see
:meth:`ServerManager._install_finished`); past it the action is refused as before."""


class ServerManager:
    """All servers of this agent, their containers, and the loops that watch them."""

    def __init__(
        self,
        config: AgentConfig,
        backend: Backend,
        bus: EventBus,
        disks: DiskImages | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.bus = bus
        self.store = StateStore(config.storage.state_dir)
        self.registry = Registry()
        self.servers = self.registry.servers
        self.started_at = utcnow()
        self.machine = Machine(self.store, bus, self.registry.registered)
        self.powers = Power(config, backend, self.machine, self.registry)
        self.install_logs = InstallLogs(
            config.storage.state_dir / "install-logs", config.console.install_log_size
        )
        self.installer = Installer(
            config, backend, self.machine, self.registry, self.powers, self.install_logs
        )
        self.crashes = CrashWatcher(backend, self.machine, self.registry, self.powers, self._spawn)
        self.recovery = Recovery(
            config, backend, self.machine, self.registry, self.store, self.crashes
        )
        self.observer = Observer(backend)
        storage = config.storage
        self.quotas = Quotas(
            config,
            disks
            or LoopExt4(
                storage.disks_dir,
                storage.volumes_dir,
                timeout=config.disks.tool_timeout.total_seconds(),
            ),
            self.machine,
            self.registry,
        )
        self.installer.before_volume.append(self.quotas.prepare)
        self.powers.boot_checks.append(self.quotas.check_boot)
        self._watch: EventWatch | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._actions: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._storage: asyncio.Task[None] | None = None
        self._detach_gate = bus.add_gate(self.machine)

    # -- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the state dir, connect to Docker, recover, and watch Docker's events."""
        self.started_at = utcnow()
        self.recovery.load()
        await self.quotas.start(self.servers.values())  # disk images mounted before any start
        if await self.backend.connect():
            await self._on_connected()
        else:
            log.warning(
                "Docker engine unreachable at start (%s); the API is up, container calls "
                "answer 503 until it answers",
                self.backend.error,
            )
        await self.machine.settled()  # what recovery changed is durable before the API opens
        self._watchdog = asyncio.create_task(self._watchdog_loop(), name="docker-watchdog")
        self._storage = asyncio.create_task(self._storage_loop(), name="state-dir-retry")

    async def _storage_loop(self) -> None:
        """Every second while the state directory fails: write what waits in memory again."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self.machine.retry_unsaved()
            except Exception:  # the retry must outlive any surprise
                log.exception("writing unsaved server states failed")

    async def drain(self, grace: float) -> list[str]:
        """Wait up to ``grace`` seconds for running installs and power actions; then cancel
        what is left. Returns what was cancelled (also logged)."""
        pending: dict[asyncio.Task[Any], str] = {
            s.installer: f"install of {s.id}"
            for s in self.servers.values()
            if s.installer is not None and not s.installer.done()
        }
        pending.update({t: t.get_name() for t in self._actions if not t.done()})
        if pending and grace > 0:
            log.info("shutting down: waiting up to %gs for %s", grace, ", ".join(pending.values()))
            await asyncio.wait(pending, timeout=grace)
        left = [t for t in pending if not t.done()]
        cancelled = sorted(pending[t] for t in left)
        if cancelled:
            log.warning(
                "shutdown grace over: cancelled %s (an install cut off is marked failed at the "
                "next start)",
                ", ".join(cancelled),
            )
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return cancelled

    async def stop(self, grace: float = 0.0) -> None:
        """Stop watching; let work finish for ``grace`` seconds, cut the rest off."""
        for loop_task in (self._watchdog, self._storage):
            if loop_task is not None:
                loop_task.cancel()
        cut_off = [s for s in self.servers.values() if s.installing()]
        await self.drain(grace)
        cut_off = [s for s in cut_off if s.state == "installing"]
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *(t for t in [self._watchdog, self._storage, *self._tasks] if t is not None),
            return_exceptions=True,
        )
        # their state files still say installing: failed at the next start
        await self.installer.cut_off(cut_off)
        await self._close_watch()
        await self.machine.settled()  # every change durable and published before the exit
        detach, self._detach_gate = self._detach_gate, lambda: None
        detach()
        self.backend.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tracked(self, coro: Coroutine[Any, Any, Server], name: str) -> Server:
        """Run a power action as a task a drain can wait for (and cancel after its grace)."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)
        return await asyncio.shield(task)

    # -- engine connection ------------------------------------------------------------------

    async def _close_watch(self) -> None:
        if self._watch is not None:
            watch, self._watch = self._watch, None
            await watch.close()

    async def _watchdog_loop(self) -> None:
        interval = self.config.docker.reconnect_interval.total_seconds()
        while True:
            if self.backend.available:
                await self.backend.lost.wait()
                continue
            await self._close_watch()
            await asyncio.sleep(interval)
            if await self.backend.connect():
                log.info("Docker engine reachable again; reconciling servers with Docker")
                await self._on_connected()

    async def _on_connected(self) -> None:
        try:
            self._watch = await self.backend.watch(self.crashes.on_event)
            await self.recovery.reconcile()
            await self.machine.settled()
        except AgentError as exc:
            log.warning("reconnecting to Docker failed half-way (%s); retrying", exc.message)
        except Exception:  # the watchdog must outlive any surprise from Docker
            log.exception("reconciling servers with Docker failed; retrying on reconnect")

    async def reconcile(self) -> None:
        await self.recovery.reconcile()
        await self.machine.settled()

    # -- lifecycle actions ------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> Server:
        """Validate against policy, ports and ids, then install in the background (202)."""
        check_spec(spec, self.config.policy, self.config.storage)
        self._require_docker()
        self.quotas.admit(spec)
        return await self.installer.create(spec)

    async def reinstall(self, server_id: str, stop_timeout: float = 10.0) -> Server:
        """Re-run the install keeping the volume; 202 at once, the work in the background.

        A running server is stopped first (gracefully, killed after ``stop_timeout``).
        """
        server = self.get(server_id)
        check_spec(server.spec, self.config.policy, self.config.storage)
        self._require_docker()
        await self._install_finished(server)
        return self.installer.reinstall(server, stop_timeout)

    async def power(self, server_id: str, action: str, timeout: float = 10.0) -> Server:
        """``start``, ``stop``, ``restart`` or ``kill``; answers when the action is done."""
        server = self.get(server_id)
        self.powers.held(server, action)
        self._require_docker()
        await self._install_finished(server)
        try:
            return await self._tracked(
                self.powers.act(server, action, timeout), f"{action} of {server_id}"
            )
        finally:  # answered (or refused) only once its changes are durable and published
            await self.machine.settled()

    async def delete(self, server_id: str, *, volumes: bool = False) -> None:
        server = self.get(server_id)
        self._require_docker()
        task = server.installer
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        b = self.backend
        async with server.lock:
            if not self.registry.registered(server):
                raise NotFound(f"no server with id {server_id!r} on this agent")
            await b.remove_role(server_id, "install", what="removing the install container")
            await b.remove_role(server_id, "server", what="removing the server's container")
            await self.quotas.release(server_id, volumes=volumes)  # unmounted before the rm
            if volumes:
                await b.remove_volume(server_id)
            del self.servers[server_id]
            self.install_logs.remove(server_id)
            self.machine.deleted(server_id)
        await self.machine.settled()

    # -- looking ----------------------------------------------------------------------------

    async def logs(self, server_id: str, tail: int | None) -> str:
        server = self.get(server_id)
        self._require_docker()
        return await self.observer.logs(server, tail)

    async def follow_logs(
        self, server_id: str, tail: int | None, shaper: LineShaper | None = None
    ) -> AsyncIterator[Shaped]:
        """Lines of the server's output as they come (for ``?follow=true``)."""
        server = self.get(server_id)
        self._require_docker()
        return await self.observer.follow_logs(server, tail, shaper)

    async def stats(self, server_id: str) -> ContainerStats:
        server = self.get(server_id)
        self._require_docker()
        return await self.observer.stats(server)

    async def exec(self, server_id: str, command: str | list[str], timeout: float) -> ExecResult:
        server = self.get(server_id)
        self._require_docker()
        return await self.observer.exec(server, command, timeout)

    def get(self, server_id: str) -> Server:
        return self.registry.get(server_id)

    def _require_docker(self) -> None:
        if not self.backend.available:
            raise Unavailable(self.backend.unavailable_message())

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CONTAINER_STATES, 0)
        for server in self.servers.values():
            counts[server.state] += 1
        counts["total"] = len(self.servers)
        return counts

    async def _install_finished(
        self, server: Server, timeout: float = INSTALL_TAIL_SECONDS
    ) -> None:
        """An install whose server already left ``installing`` (it is ``ready`` or ``running``,
        what a client waits for) only has its last change to make durable: let it end rather
        than refuse the next action as "installing". Bounded; a still-running one is refused."""
        task = server.installer
        if task is None or task.done() or server.state == "installing":
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            return  # still at work (a start after the install): the action is refused (409)
        except Exception:  # the install's own failure is its own to report (Error)
            return

    async def settle_reads(self, timeout: float = READ_SETTLE_SECONDS) -> None:
        """Before a read of servers' states: wait for the writer to commit the changes already
        made in memory, so a state that is read is durable and its event already published
        (a client that saw ``running`` also finds the ``Running`` event and its update in the
        outbox). Returns at once when nothing is pending; waits at most ``timeout`` (a disk
        that hangs must not hang reads: the answer is then the state in memory)."""
        try:
            await asyncio.wait_for(self.machine.settled(), timeout)
        except TimeoutError:
            log.warning(
                "a read answered before the state it shows was durable: the state directory "
                "did not commit within %.1f s (a slow or stalled disk); see /health",
                timeout,
            )

    def views(self) -> list[ContainerView]:
        self._require_docker()
        return [s.view() for s in sorted(self.servers.values(), key=lambda s: s.id)]

    def view(self, server_id: str) -> ContainerView:
        self._require_docker()
        return self.get(server_id).view()
