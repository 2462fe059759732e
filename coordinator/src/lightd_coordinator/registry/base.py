"""The registry interface: where the coordinator keeps nodes, command results and event history.

A deliberately small set of storage operations, so that a new backend (a distributed store that
lets several coordinator replicas share one fleet: etcd, Redis, PostgreSQL) is one class::

    Registry                 the interface (this module)
    ├── MemoryRegistry       registry/memory.py  the seed's default; gone on restart
    └── SqliteRegistry       registry/sqlite.py  embedded file; survives a restart

Rules every implementation follows:

- nodes are stored whole (:class:`StoredNode`); the coordinator does read-modify-write under its
  own lock, so a shared backend should make ``put_node`` a compare-and-set on ``revision``;
- ``claim_idempotency_key`` is atomic: of two callers with one key, exactly one gets ``None``;
- ``append_event`` hands out ids that increase by exactly one, never reused, and keeps at least
  the newest ``keep`` events for ``recent_events`` (a client resuming with ``Last-Event-ID``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from lightd_shared.commands import CommandResult
from lightd_shared.nodes import NodeRecord
from lightd_shared.services import Service
from lightd_shared.timestamps import Timestamp

__all__ = ["Registry", "StoredEvent", "StoredNode"]


class StoredNode(BaseModel):
    """A node as stored: its public record plus what only the coordinator keeps."""

    model_config = ConfigDict(extra="ignore")

    record: NodeRecord
    services: list[Service] | None = Field(
        default=None, description="What the node last reported; None if it never did"
    )
    active_since: Timestamp
    revision: int = 0
    dispatch_key: str | None = Field(
        default=None,
        repr=False,
        description="The node's key for signing commands (from its registration); never served",
    )


class StoredEvent(BaseModel):
    """One published event: its id and the exact JSON envelope that was sent."""

    id: int
    node_id: str | None = None
    type: str
    body: str


class Registry(ABC):
    """Storage for the fleet. Implementations are safe to call from one event loop."""

    provider: str = "abstract"
    persistent: bool = False

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create tables, connect)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store."""

    # -- nodes ---------------------------------------------------------------------------
    @abstractmethod
    async def get_node(self, node_id: str) -> StoredNode | None: ...

    @abstractmethod
    async def put_node(self, node: StoredNode) -> None: ...

    @abstractmethod
    async def delete_node(self, node_id: str) -> bool: ...

    @abstractmethod
    async def list_nodes(self) -> list[StoredNode]:
        """Every node, ordered by id."""

    # -- command results -----------------------------------------------------------------
    @abstractmethod
    async def put_result(self, result: CommandResult, expires_at: datetime) -> None: ...

    @abstractmethod
    async def get_result(self, command_id: str) -> CommandResult | None: ...

    @abstractmethod
    async def purge_results(self, now: datetime) -> int:
        """Forget results (and idempotency keys) that expired before ``now``; how many went."""

    @abstractmethod
    async def claim_idempotency_key(
        self, key: str, command_id: str, expires_at: datetime
    ) -> str | None:
        """Bind ``key`` to ``command_id`` unless bound already; return the earlier id if so."""

    # -- events --------------------------------------------------------------------------
    @abstractmethod
    async def append_event(self, node_id: str | None, type: str, body: str, keep: int) -> int:
        """Store one event under the next id and return that id."""

    @abstractmethod
    async def recent_events(self, limit: int) -> list[StoredEvent]:
        """The newest ``limit`` events, oldest first."""

    @abstractmethod
    async def last_event_id(self) -> int:
        """The id of the newest event ever appended (0 if none)."""
