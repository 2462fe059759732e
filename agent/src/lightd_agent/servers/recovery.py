"""Recovery: what the state files say against what Docker has, at start and after Docker loss.

- A server whose stored spec the policy refuses is *held* (``hold``): known, ``failed``, never
  started, restarted or reconciled; a reinstall is refused by the same check.
- A server whose container died while nobody watched is a crash (its restart policy applies).
- An install that is not running in this process was cut off: ``failed``.
- A leftover install container is removed.
- A container with this node's labels but no state file is adopted from its ``lightd.spec``.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from lightd_agent.backend.base import LABEL_SPEC, Backend, ContainerInfo
from lightd_agent.config import AgentConfig
from lightd_agent.errors import PolicyRefused
from lightd_agent.policy import check_spec
from lightd_agent.servers.crash import CrashWatcher
from lightd_agent.servers.machine import Cause, Machine
from lightd_agent.servers.model import Registry, Server
from lightd_agent.state import StateStore
from lightd_shared.containers import ContainerSpec

__all__ = ["Recovery"]

log = logging.getLogger(__name__)


class Recovery:
    """Loads the state dir and reconciles it with Docker."""

    def __init__(
        self,
        config: AgentConfig,
        backend: Backend,
        machine: Machine,
        registry: Registry,
        store: StateStore,
        crashes: CrashWatcher,
    ) -> None:
        self.config = config
        self.backend = backend
        self.machine = machine
        self.registry = registry
        self.store = store
        self.crashes = crashes

    def load(self) -> None:
        """Read every state file; hold the servers the policy now refuses."""
        self.store.prepare()
        for record in self.store.load_all():
            server = Server.from_record(record)
            self.registry.servers[record.spec.id] = server
            try:
                check_spec(record.spec, self.config.policy, self.config.storage)
            except PolicyRefused as exc:
                self.hold(server, exc)

    def hold(self, server: Server, refusal: PolicyRefused) -> None:
        """A stored spec the policy refuses (a tampered state file, or a stricter policy)."""
        why = (
            f"not started: its stored spec is refused by this agent's policy: {refusal.message}"
            f"; if the state file {self.store.directory / (server.id + '.json')} was not "
            "edited on purpose it may have been tampered with: delete the server, or fix the "
            "file or the policy and restart the agent"
        )
        server.hold = why
        if server.state == "failed" and server.error == why:
            # held the same way at the last start: already said on the event stream
            log.error("server %s failed: %s", server.id, why)
            return
        self.machine.move(server, Cause.FAIL, data=why)

    async def reconcile(self) -> None:
        """Match the servers we know with the containers Docker has; fix what drifted."""
        owned = await self.backend.list_owned()
        servers = self.registry.servers
        mains: dict[str, ContainerInfo] = {}
        for container in owned:
            known = servers.get(container.server)
            if container.role == "install":
                if known is None or not known.installing():
                    await self.backend.remove(
                        container.id, what="removing a leftover install container"
                    )
            elif container.role == "server":
                if container.server in mains:  # never expected; keep the first, report the rest
                    log.error("two containers for server %s; keeping %s", container.server, mains)
                    continue
                mains[container.server] = container
        for server_id, container in mains.items():
            if server_id not in servers:
                self._adopt(server_id, container)
        for server in list(servers.values()):
            if server.installing() or server.hold is not None:
                continue  # a held server's container is left exactly as it is
            async with server.lock:
                await self._reconcile_one(server, mains.get(server.id))

    def _adopt(self, server_id: str, container: ContainerInfo) -> None:
        try:
            spec = ContainerSpec.model_validate_json(container.labels[LABEL_SPEC])
        except (KeyError, ValidationError):
            log.error(
                "container %s is labelled as server %s of this node but has no readable spec; "
                "left alone: remove it with `docker rm -f %s` if it is not needed",
                container.short_id,
                server_id,
                container.short_id,
            )
            return
        try:
            check_spec(spec, self.config.policy, self.config.storage)
        except PolicyRefused as exc:
            log.error(
                "container %s is labelled as server %s of this node but its spec is refused "
                "by this agent's policy (%s); not adopted, left alone: remove it with "
                "`docker rm -f %s` if it is not needed",
                container.short_id,
                server_id,
                exc.message,
                container.short_id,
            )
            return
        log.warning("server %s had no state file; rebuilt from its container's labels", server_id)
        server = Server(spec=spec, state="stopped", container_id=container.id)
        self.registry.servers[server_id] = server
        self.machine.save(server)

    async def _reconcile_one(self, server: Server, container: ContainerInfo | None) -> None:
        if server.state == "installing":
            what = "reinstall" if container is not None else "install"
            self.machine.move(
                server,
                Cause.FAIL,
                data=f"the {what} was cut off (the agent stopped before it finished); "
                "reinstall the server to try again",
            )
            return
        if container is None:
            if server.state != "failed":
                server.container_id = None
                self.machine.move(
                    server,
                    Cause.FAIL,
                    data="the server's container was removed outside the agent; reinstall it",
                )
            return
        server.container_id = container.id
        if container.running:
            server.started_at = container.started_at
            server.published = list(container.ports)
            if server.state != "running":
                server.exit_code = None
                self.machine.move(server, Cause.FOUND_RUNNING)
            return
        server.finished_at = container.finished_at
        if server.state == "running":
            await self.crashes.crashed(server, container.exit_code, oom=container.oom_killed)
        elif server.state == "stopping":
            server.exit_code = container.exit_code
            self.machine.move(server, Cause.STOPPED, exit_code=container.exit_code)
