"""One managed server as the agent keeps it in memory, and the registry of all of them.

Every field has one owner, the module that changes it; the others only read it:

- ``state``, ``error``: :mod:`.machine` (``Machine.move``)
- ``lock``: :mod:`.power` (every Docker action on one server holds it, so two never interleave)
- ``installer``: :mod:`.install` (the background install task, while one runs)
- ``restarts``: :mod:`.crash` (restart-policy window)
- ``hold``: :mod:`.recovery` (why the policy refused the stored spec: never started again)
- ``restoring``: :mod:`lightd_agent.backups.service` (a restore runs; power actions refused)

The run facts (``state`` to ``container_id``) are the fields of the shared
:class:`~lightd_shared.containers.ServerFacts`, which the state file (``StoredServer``) and the
status views (``ContainerStatus``, ``ContainerView``) extend: :data:`FACTS` names them once, and
the state file and the view are built from it (a test checks that :class:`Server` declares each).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lightd_agent.errors import NotFound
from lightd_agent.state import StoredServer
from lightd_shared.containers import (
    ContainerSpec,
    ContainerState,
    ContainerView,
    PortMapping,
    ServerFacts,
)

__all__ = ["FACTS", "Registry", "Server"]

FACTS: tuple[str, ...] = tuple(name for name in ServerFacts.model_fields if name != "id")
"""The run facts a :class:`Server` keeps: :class:`ServerFacts`' fields but ``id`` (the spec's)."""


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
        return cls(spec=record.spec, **{name: getattr(record, name) for name in FACTS})

    def facts(self) -> dict[str, Any]:
        """The run facts, by :data:`FACTS`."""
        return {name: getattr(self, name) for name in FACTS}

    def record(self) -> StoredServer:
        return StoredServer(spec=self.spec, **self.facts())

    def view(self) -> ContainerView:
        return ContainerView(
            id=self.id,
            **self.facts(),
            restarts=len(self.restarts),
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
