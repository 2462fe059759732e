"""Install and reinstall: checks at once (answered 202), the work in the background.

The events, in the remote-sync seed's order::

    install     Started, CreatingContainer, Ready            (then Running if started)
    reinstall   ReinstallStarted, CreatingContainer, Ready
    errors      Error  error="failed" | "timeout", data = what happened, for an operator

A create claims its id and host ports before its first ``await``, so two concurrent creates of
the same id or port cannot both pass. The install task is the server's ``installer``; it
holds the server's lock for its whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

from lightd_agent.backend.base import Backend, EngineError, ImageMissing
from lightd_agent.config import AgentConfig
from lightd_agent.console.install_log import InstallLogs
from lightd_agent.errors import AgentError, Conflict, DockerTimeout, Unavailable
from lightd_agent.servers.machine import Cause, Machine
from lightd_agent.servers.model import Registry, Server
from lightd_agent.servers.power import Power, locate
from lightd_shared.containers import ContainerSpec
from lightd_shared.remote import MAX_ERROR_DATA_LENGTH

__all__ = ["Installer", "port_free"]

log = logging.getLogger(__name__)


def port_free(port: int, protocol: str) -> bool:
    """Whether this host can bind ``port`` now (any address)."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _with_tail(lead: str, tail: str) -> str:
    """``lead`` then as much of the *end* of ``tail`` as the remote's ``data`` bound allows
    (the update is cut to that bound from its end otherwise, losing the last lines)."""
    room = MAX_ERROR_DATA_LENGTH - len(lead)
    return lead + (tail if len(tail) <= room else tail[-room:])


class Installer:
    """Creates servers and (re)installs them."""

    def __init__(
        self,
        config: AgentConfig,
        backend: Backend,
        machine: Machine,
        registry: Registry,
        power: Power,
        install_logs: InstallLogs | None = None,
    ) -> None:
        self.config = config
        self.install_logs = install_logs
        self.backend = backend
        self.machine = machine
        self.registry = registry
        self.power = power
        # Ids and host ports of creates that passed their checks and await Docker.
        self._creating: set[str] = set()
        self._claimed_ports: dict[tuple[int, str], str] = {}
        self.before_volume: list[Callable[[ContainerSpec], Awaitable[None]]] = []
        """Run before the volume is made or mounted (the disk quota mounts its image there)."""

    def _check_ports(self, spec: ContainerSpec) -> None:
        for mapping in spec.ports:
            if mapping.host is None:
                continue
            claimant = self._claimed_ports.get((mapping.host, mapping.protocol))
            if claimant is not None:
                raise Conflict(
                    f"ports: host port {mapping.host}/{mapping.protocol} is already claimed by "
                    f"server {claimant!r}, being created right now; choose another or omit 'host'"
                )
            for other in self.registry.servers.values():
                for used in other.spec.ports:
                    if (used.host, used.protocol) == (mapping.host, mapping.protocol):
                        raise Conflict(
                            f"ports: host port {mapping.host}/{mapping.protocol} is already "
                            f"used by server {other.id!r}; choose another or omit 'host'"
                        )
            if not port_free(mapping.host, mapping.protocol):
                raise Conflict(
                    f"ports: host port {mapping.host}/{mapping.protocol} is already in use on "
                    "this host; choose another or omit 'host' to let Docker pick one"
                )

    async def create(self, spec: ContainerSpec) -> Server:
        """Validate ids and ports, claim them, then install in the background."""
        servers = self.registry.servers
        if spec.id in servers:
            raise Conflict(f"a server with id {spec.id!r} already exists on this agent")
        if spec.id in self._creating:
            raise Conflict(f"a server with id {spec.id!r} is being created on this agent right now")
        self._check_ports(spec)
        # Claim the id and the host ports before the first await; every check above and
        # these claims run without yielding, so two concurrent creates cannot both pass.
        ports = [(p.host, p.protocol) for p in spec.ports if p.host is not None]
        self._creating.add(spec.id)
        for port in ports:
            self._claimed_ports[port] = spec.id
        try:
            # The image lookup the install begins with, made meanwhile (it changes nothing):
            # the install then starts with the volume.
            found, image_present = await asyncio.gather(
                self.backend.list_owned(spec.id, what="checking for an existing container"),
                self._image_present(spec.image),
            )
            for existing in found:
                if existing.role == "server":
                    raise Conflict(
                        f"a container for server {spec.id!r} already exists (container "
                        f"{existing.short_id}); delete it first"
                    )
            server = Server(spec=spec, state="installing")
            try:  # written before it is known: a refused create leaves nothing behind
                await self.machine.save_new(server)
            except OSError as exc:
                self.machine.storage_failed(exc)
                raise Unavailable(
                    f"cannot create server {spec.id!r}: the state directory "
                    f"{self.machine.store.directory} cannot be written ({exc}); free space or "
                    "fix the directory, then retry"
                ) from exc
            servers[spec.id] = server  # from here on the id and ports are the server's
            # Docker had nothing of this id: nothing old to remove
            server.installer = asyncio.create_task(
                self._run(server, fresh=not found, image_present=image_present)
            )
            return server
        finally:
            self._creating.discard(spec.id)
            for port in ports:
                if self._claimed_ports.get(port) == spec.id:
                    del self._claimed_ports[port]

    async def _image_present(self, image: str) -> bool:
        """Whether the engine holds ``image``; ``False`` when the lookup fails (the install's
        own :meth:`~lightd_agent.backend.base.Backend.ensure_image` then says why)."""
        try:
            return await self.backend.has_image(image)
        except AgentError:
            return False

    def reinstall(self, server: Server, stop_timeout: float) -> Server:
        if server.installing():
            raise Conflict(f"server {server.id!r} is already installing")
        if server.restoring is not None:
            raise Conflict(f"server {server.id!r} is restoring backup {server.restoring}")
        server.installer = asyncio.create_task(
            self._run(server, reinstall=True, stop_timeout=stop_timeout)
        )
        return server

    async def _run(
        self,
        server: Server,
        *,
        reinstall: bool = False,
        fresh: bool = False,
        image_present: bool = False,
        stop_timeout: float = 10.0,
    ) -> None:
        try:
            async with server.lock:
                created = await self._install_locked(
                    server,
                    reinstall=reinstall,
                    fresh=fresh,
                    image_present=image_present,
                    stop_timeout=stop_timeout,
                )
                if created is not None and server.spec.start_on_completion:
                    try:
                        await self.power.start_locked(server, created)
                    except AgentError as exc:
                        self.power.failed(server, exc, "starting after the install")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a server stuck in installing
            log.exception("install of %s failed unexpectedly", server.id)
            self.machine.move(server, Cause.FAIL, data=f"unexpected error during install: {exc}")
        await self.machine.settled()  # the install is done once its changes are durable

    async def _install_locked(
        self,
        server: Server,
        *,
        reinstall: bool,
        fresh: bool,
        image_present: bool,
        stop_timeout: float,
    ) -> str | None:
        """Install; the id of the created container, or ``None`` after a published failure.

        ``image_present``: the create's own lookup found the image a moment ago, so it is not
        looked up again (a reinstall always looks: the image may have gone since)."""
        spec = server.spec
        b = self.backend
        server.exit_code = None
        if reinstall:
            if server.state == "running":
                container = await locate(b, server)
                self.machine.move(server, Cause.STOP)
                await b.stop(container.id, stop_timeout)
            self.machine.move(server, Cause.REINSTALL)
        else:
            self.machine.move(server, Cause.INSTALL)
        try:
            if not image_present:
                await b.ensure_image(
                    spec.image, timeout=self.config.docker.install_timeout.total_seconds()
                )
            for prepare in self.before_volume:
                await prepare(spec)
            await b.ensure_volume(spec)
            if not fresh:
                await b.remove_role(spec.id, "install", what="removing an old install container")
            if spec.install_script is not None:
                limit = self.config.docker.install_timeout
                kept = None
                if self.install_logs is not None:
                    kept = self.install_logs.begin(spec.id, "reinstall" if reinstall else "install")
                try:
                    outcome = await b.run_install(
                        spec, limit.total_seconds(), None if kept is None else kept.write
                    )
                finally:
                    if kept is not None:
                        kept.close()
                if outcome.exit_code is None:
                    self.machine.move(
                        server,
                        Cause.FAIL,
                        error="timeout",
                        data=_with_tail(
                            f"install script did not finish within {limit} "
                            "(docker.install_timeout); last lines of output:\n",
                            outcome.tail(),
                        ),
                    )
                    return None
                if outcome.exit_code != 0:
                    self.machine.move(
                        server,
                        Cause.FAIL,
                        data=_with_tail(
                            f"install script exited with code {outcome.exit_code}; "
                            "last lines of output:\n",
                            outcome.tail(),
                        ),
                    )
                    return None
            self.machine.move(server, Cause.CREATE_CONTAINER)
            if not fresh:
                await b.remove_role(spec.id, "server", what="removing the old container")
            server.container_id = None
            container = await b.create_server(spec)
        except ImageMissing as exc:
            self.machine.move(server, Cause.FAIL, data=exc.explanation)
            return None
        except EngineError as exc:
            self.machine.move(
                server, Cause.FAIL, data=f"Docker container creation failed: {exc.explanation}"
            )
            return None
        except DockerTimeout as exc:
            self.machine.move(server, Cause.FAIL, error="timeout", data=exc.message)
            return None
        except AgentError as exc:
            self.machine.move(server, Cause.FAIL, data=exc.message)
            return None
        server.container_id = container.id
        server.started_at = None
        server.finished_at = None
        server.published = []
        self.machine.move(server, Cause.INSTALLED)
        return container.id

    async def cut_off(self, servers: list[Server]) -> None:
        """Remove the install containers of installs cut off by shutdown (best effort)."""
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.backend.remove_role(
                        server.id,
                        "install",
                        what="removing an install container cut off by shutdown",
                    ),
                    timeout=5,
                )
