"""Power actions: ``start``, ``stop``, ``restart``, ``kill``, each under the server's lock.

Every action goes through :meth:`Power.act`: refusals that need no Docker call come first
(:meth:`Power.refusal`: held by the policy, installing), then the server's ``asyncio.Lock`` is
taken, so two actions on one server never interleave. What must hold before a boot lives in
:meth:`Power.pre_boot`. A Docker failure during an action re-reads the state from Docker
(never leaving ``stopping``), publishes one ``Error`` and is raised to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lightd_agent.backend.base import Backend, ContainerInfo, EngineError
from lightd_agent.config import AgentConfig
from lightd_agent.errors import AgentError, Conflict, DockerTimeout, NotFound, PolicyRefused
from lightd_agent.policy import check_spec
from lightd_agent.servers.machine import Cause, Machine
from lightd_agent.servers.model import Registry, Server
from lightd_shared.containers import ContainerState
from lightd_shared.timestamps import utcnow

__all__ = ["ACTIONS", "Power", "Refused", "locate"]

log = logging.getLogger(__name__)

ACTIONS = ("start", "stop", "restart", "kill")


class Refused(Conflict):
    """The action cannot begin in the server's state (409); nothing was tried, nothing published."""


async def locate(backend: Backend, server: Server) -> ContainerInfo:
    """The server's container: by its known id (one inspect), else by its labels."""
    container: ContainerInfo | None = None
    if server.container_id:
        container = await backend.inspect(server.container_id)
        if container is not None and (container.server != server.id or container.role != "server"):
            container = None
    if container is None:
        container = await backend.find(server.id)
    if container is None:
        raise Refused(f"server {server.id!r} has no container (state {server.state}); reinstall it")
    server.container_id = container.id
    return container


class Power:
    """Start and stop servers' containers; the one path for every power action."""

    def __init__(
        self, config: AgentConfig, backend: Backend, machine: Machine, registry: Registry
    ) -> None:
        self.config = config
        self.backend = backend
        self.machine = machine
        self.registry = registry
        self.boot_checks: list[Callable[[Server], None]] = []
        """More of what must hold before a boot (the disk quota: its image is mounted)."""

    def held(self, server: Server, action: str) -> None:
        """403 for a boot of a server the policy holds (its stored spec is refused)."""
        if server.hold is not None and action in ("start", "restart"):
            raise PolicyRefused(f"server {server.id!r} is {server.hold}")

    def busy(self, server: Server) -> None:
        """409 while the server installs or a backup is restored into its volume."""
        if server.installing() or server.state == "installing":
            raise Refused(f"server {server.id!r} is installing; wait until it is ready")
        if server.restoring is not None:
            raise Refused(
                f"server {server.id!r} is restoring backup {server.restoring}; wait until it ends"
            )

    def refusal(self, server: Server, action: str) -> None:
        """Raise the named refusal if ``action`` cannot begin now (no Docker call)."""
        self.held(server, action)
        self.busy(server)

    async def act(self, server: Server, action: str, timeout: float) -> Server:
        """Run ``action`` under the server's lock; answers when it is done."""
        self.refusal(server, action)
        async with server.lock:
            if not self.registry.registered(server):
                raise NotFound(f"no server with id {server.id!r} on this agent")
            self.refusal(server, action)
            before = server.state
            try:
                if action == "start":
                    await self.start_locked(server)
                elif action == "stop":
                    await self.stop_locked(server, timeout, kill=False)
                elif action == "kill":
                    await self.stop_locked(server, timeout, kill=True)
                elif action == "restart":
                    await self.stop_locked(server, timeout, kill=False)
                    await self.start_locked(server)
                else:  # pragma: no cover - routes only pass the four actions
                    raise NotFound(f"unknown action {action!r}")
            except Refused:
                raise
            except AgentError as exc:
                await self.resync(server, before)
                self.failed(server, exc, action)
                raise
        return server

    def pre_boot(self, server: Server) -> None:
        """What must hold before a container starts."""
        if server.state == "failed":
            raise Refused(
                f"server {server.id!r} failed ({server.error}); reinstall it before starting"
            )
        # again at every start: a bind source may have changed since the create (a server
        # that can write under storage.base_path could have made part of it a symlink)
        check_spec(server.spec, self.config.policy, self.config.storage)
        for check in self.boot_checks:
            check(server)

    async def start_locked(self, server: Server, container_id: str | None = None) -> None:
        """Start the container (``container_id`` if the caller just created it).

        Publishes ``Running`` on success and nothing on failure: the caller says, once, what
        failed (``Error``), whoever it is (a power action, the install, the restart policy).
        """
        if server.state == "running":
            return
        self.pre_boot(server)
        if container_id is None:
            container_id = (await locate(self.backend, server)).id
        try:
            info = await self.backend.start(container_id)
        except EngineError as exc:
            raise Conflict(f"cannot start server {server.id!r}: {exc.explanation}") from exc
        server.started_at = info.started_at or utcnow()
        server.exit_code = None
        server.finished_at = None
        server.published = list(info.ports)
        self.machine.move(server, Cause.START)

    async def stop_locked(self, server: Server, timeout: float, *, kill: bool) -> None:
        if server.state in ("ready", "stopped", "failed"):
            return
        container = await locate(self.backend, server)
        if server.state != "crashed":
            self.machine.move(server, Cause.STOP)
            if kill:
                await self.backend.kill(container.id)
            else:
                await self.backend.stop(container.id, timeout)
        after = await self.backend.inspect(container.id, what="reading the server's state")
        server.exit_code = after.exit_code if after is not None else None
        server.finished_at = after.finished_at if after is not None else None
        self.machine.move(server, Cause.STOPPED, exit_code=server.exit_code)

    async def resync(self, server: Server, before: ContainerState) -> None:
        """After a failed action, take the state Docker reports, or the state before it."""
        if server.state != "stopping":
            return
        try:
            container = await locate(self.backend, server)
            after = await self.backend.inspect(container.id, what="reading state")
        except AgentError:  # Docker cannot tell; never leave it "stopping"
            running = before == "running"
        else:
            running = after is not None and after.running
        self.machine.move(server, Cause.RESYNC_RUNNING if running else Cause.RESYNC_STOPPED)

    def failed(self, server: Server, exc: AgentError, doing: str) -> None:
        """An action failed: the state stays; one ``Error`` says what happened."""
        self.machine.move(
            server,
            Cause.ACTION_FAILED,
            error="timeout" if isinstance(exc, DockerTimeout) else "failed",
            data=f"{doing} failed: {exc.message}",
        )
