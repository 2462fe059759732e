"""``limits.disk`` through a server's life: where the disk image is made, mounted, checked,
resized and removed, each step at its place in the lifecycle.

- **start** (before any server starts): probe once whether loop-mounted ext4 works here (one
  log line either way), then mount the image of every server with ``limits.disk``; one that is
  missing or fails its check leaves that server ``failed`` with the reason, never started.
- **create**: refused (409) when this agent cannot enforce a disk limit, before anything exists.
- **install/reinstall**: the image is made (or mounted) before the Docker volume is made or any
  container mounts it, so the container's ``/data`` is the image's filesystem.
- **boot**: every start checks the image is mounted (:meth:`Quotas.check_boot`), so a server never
  runs on the bare directory under it.
- **delete**: unmounted (kept, when the volume is kept); with ``?volumes=true`` deleted.
- **quota / resize**: ``statvfs`` of the mount; a resize holds the server's lock, as power
  actions do, and writes the new size into the stored spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from lightd_agent.config import AgentConfig
from lightd_agent.disks.base import DiskError, DiskImages, Probe, Usage
from lightd_agent.errors import Conflict, NotFound
from lightd_agent.servers.machine import Cause, Machine
from lightd_agent.servers.model import Registry, Server
from lightd_shared.containers import ContainerSpec
from lightd_shared.quota import MIB, QuotaView, parse_disk

__all__ = ["Quotas", "quota_view"]

log = logging.getLogger(__name__)


def quota_view(usage: Usage) -> QuotaView:
    """lightd's four fields in whole MB, the exact bytes beside them."""
    percentage = 100.0 * usage.used / usage.size if usage.size else 0.0
    return QuotaView(
        size_mb=usage.size // MIB,
        used_mb=round(usage.used / MIB),
        available_mb=usage.available // MIB,
        percentage_used=round(min(percentage, 100.0), 2),
        limit_mb=usage.limit // MIB,
        size_bytes=usage.size,
        used_bytes=usage.used,
        available_bytes=usage.available,
    )


class Quotas:
    """The disk images of this agent's servers, tied to their lifecycle."""

    def __init__(
        self, config: AgentConfig, disks: DiskImages, machine: Machine, registry: Registry
    ) -> None:
        self.config = config
        self.disks = disks
        self.machine = machine
        self.registry = registry
        self.probed: Probe = Probe("not checked yet (the agent has not started)")

    # -- start -------------------------------------------------------------------------
    async def start(self, servers: Iterable[Server]) -> None:
        """Probe, then mount every image of a server with ``limits.disk`` (before any start)."""
        await self.probe()
        for server in list(servers):
            if server.spec.limits.disk is not None:
                await self._remount(server)

    async def probe(self) -> Probe:
        if not self.config.disks.enabled:
            self.probed = Probe("disk quotas are off on this agent (disks.enabled is false)")
        else:
            self.probed = await asyncio.to_thread(self.disks.probe)
        if self.probed.problem is None:
            log.info(
                "disk quotas (limits.disk): loop-mounted ext4 works on this host; a running "
                "server's disk %s",
                "grows online"
                if self.probed.online_grow
                else "grows only when stopped (no CAP_SYS_RESOURCE)",
            )
        else:
            log.warning(
                "disk quotas (limits.disk) cannot be enforced on this host: %s; creates with "
                "limits.disk are refused (409)",
                self.probed.problem,
            )
        return self.probed

    async def _remount(self, server: Server) -> None:
        if server.state == "installing" and not self.disks.exists(server.id):
            return  # cut off before its image was made: failed by recovery, made at reinstall
        problem = self.probed.problem
        try:
            if problem is not None:
                raise DiskError(f"disk quotas cannot be enforced on this host: {problem}")
            await asyncio.to_thread(self.disks.mount, server.id)
        except DiskError as exc:
            reason = f"not started: its disk image could not be mounted: {exc.message}"
            log.error("server %s: %s", server.id, reason)
            if not (server.state == "failed" and server.error == reason):
                self.machine.move(server, Cause.FAIL, data=reason)

    # -- create, install, boot, delete ----------------------------------------------------
    def admit(self, spec: ContainerSpec) -> None:
        """409 for a ``limits.disk`` this agent cannot enforce (nothing exists yet)."""
        problem = self.probed.problem
        if spec.limits.disk is not None and problem is not None:
            raise Conflict(
                f"limits.disk cannot be enforced on this agent: {problem}. Create the server "
                "without limits.disk, or on an agent that runs as root where loop devices work"
            )

    async def prepare(self, spec: ContainerSpec) -> None:
        """Before the volume is made or mounted: the image exists, at its size, mounted."""
        if spec.limits.disk is None:
            return
        self.admit(spec)
        await asyncio.to_thread(self.disks.ensure, spec.id, parse_disk(spec.limits.disk))

    def check_boot(self, server: Server) -> None:
        """Before every start: a server with ``limits.disk`` runs only on its mounted image."""
        if server.spec.limits.disk is not None and not self.disks.mounted(server.id):
            raise Conflict(
                f"server {server.id!r} has limits.disk but its disk image is not mounted at "
                f"{self.disks.root(server.id)}; it is not started on the bare directory: "
                "reinstall it (the image is kept and mounted again)"
            )

    async def release(self, server_id: str, *, volumes: bool) -> None:
        """At delete (containers gone): unmount, and with ``volumes`` delete the image."""
        if volumes:
            await asyncio.to_thread(self.disks.remove, server_id)
        elif self.disks.mounted(server_id):
            await asyncio.to_thread(self.disks.unmount, server_id)

    # -- quota and resize ---------------------------------------------------------------
    def _limited(self, server_id: str) -> Server:
        server = self.registry.get(server_id)
        if server.spec.limits.disk is None:
            raise Conflict(
                f"server {server_id!r} has no disk limit (limits.disk): its volume shares the "
                "host's filesystem and nothing is enforced; create it with limits.disk to get one"
            )
        return server

    async def quota(self, server_id: str) -> QuotaView:
        server = self._limited(server_id)
        return quota_view(await asyncio.to_thread(self.disks.usage, server.id))

    async def resize(self, server_id: str, size_mb: int) -> QuotaView:
        """Grow (a running server only where online growth works) or shrink (stopped, and
        only when the data fits); serialised with power actions by the server's lock."""
        server = self._limited(server_id)
        if server.installing() or server.state == "installing":
            raise Conflict(f"server {server_id!r} is installing; resize it once it is ready")
        async with server.lock:
            if not self.registry.registered(server):
                raise NotFound(f"no server with id {server_id!r} on this agent")
            if self.probed.problem is not None:
                raise Conflict(f"disk quotas cannot be enforced here: {self.probed.problem}")
            running = server.state in ("running", "stopping")
            await asyncio.to_thread(
                self.disks.resize,
                server.id,
                size_mb * MIB,
                running=running,
                online_grow=self.probed.online_grow,
            )
            limits = server.spec.limits.model_copy(update={"disk": f"{size_mb}m"})
            server.spec = server.spec.model_copy(update={"limits": limits})
            self.machine.save(server)
            usage = await asyncio.to_thread(self.disks.usage, server.id)
        log.info("server %s: disk resized to %d MB", server_id, size_mb)
        return quota_view(usage)
