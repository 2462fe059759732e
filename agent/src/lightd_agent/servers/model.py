"""One managed server as the agent keeps it in memory, and the registry of all of them.

Every field has one owner, the module that changes it; the others only read it:

- ``state``, ``error``: :mod:`.machine` (``Machine.move``)
- ``lock``: :mod:`.power` (every Docker action on one server holds it, so two never interleave)
- ``installer``: :mod:`.install` (the background install task, while one runs)
- ``restarts``: :mod:`.crash` (restart-policy window)
- ``hold``: :mod:`.recovery` (why the policy refused the stored spec: never started again)
- ``restoring``: :mod:`lightd_agent.backups.service` (a restore runs; power actions refused)
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from lightd_agent.errors import NotFound
from lightd_agent.state import StoredServer
from lightd_shared.containers import ContainerSpec, ContainerState, ContainerView, PortMapping

__all__ = ["Registry", "Server"]


@dataclass(eq=False)
class Server:
    """One managed server as the agent keeps it in memory."""

    spec: ContainerSpec
    state: ContainerState
    error: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    container_id: str | None = None
    published: list[PortMapping] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    installer: asyncio.Task[None] | None = None
    restarts: deque[float] = field(default_factory=deque)
    hold: str | None = None
    """Why the policy refused this server's stored spec at start; the agent never starts it."""
    restoring: str | None = None
    """The backup a restore is putting back into this server's volume, while it runs."""

    @property
    def id(self) -> str:
        return self.spec.id

    @classmethod
    def from_record(cls, record: StoredServer) -> Server:
        return cls(
            spec=record.spec,
            state=record.state,
            error=record.error,
            exit_code=record.exit_code,
            started_at=record.started_at,
            finished_at=record.finished_at,
            container_id=record.container_id,
        )

    def record(self) -> StoredServer:
        return StoredServer(
            spec=self.spec,
            state=self.state,
            error=self.error,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            container_id=self.container_id,
        )

    def view(self) -> ContainerView:
        return ContainerView(
            id=self.id,
            state=self.state,
            error=self.error,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            restarts=len(self.restarts),
            container_id=self.container_id,
            spec=self.spec,
            ports=list(self.published) or list(self.spec.ports),
        )

    def installing(self) -> bool:
        """An install or reinstall task of this process runs for it now."""
        return self.installer is not None and not self.installer.done()


class Registry:
    """The servers of this agent by id."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}

    def get(self, server_id: str) -> Server:
        server = self.servers.get(server_id)
        if server is None:
            raise NotFound(f"no server with id {server_id!r} on this agent")
        return server

    def registered(self, server: Server) -> bool:
        return self.servers.get(server.id) is server
