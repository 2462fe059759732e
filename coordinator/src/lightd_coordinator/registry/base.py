"""The registry interface: where the coordinator keeps nodes, command results and event history.

A deliberately small set of storage operations, so that a new backend (a distributed store that
lets several coordinator replicas share one fleet: etcd, Redis, PostgreSQL) is one class::

    Registry                 the interface (this module)
    ├── MemoryRegistry       registry/memory.py  the seed's default; gone on restart
    ├── SqliteRegistry       registry/sqlite.py  embedded file; survives a restart
    └── RedisRegistry        registry/redis.py   shared by several coordinator replicas

    RegistryUnavailable      the store cannot be reached (answered 503, never 500)
    NodeChanged              a shared store's node changed between read and write

Rules every implementation follows:

- nodes are stored whole (:class:`StoredNode`); the coordinator does read-modify-write under its
  own lock, so a shared backend makes ``put_node`` a compare-and-set on ``revision`` (revision
  0: only if the node is new; else only if the stored one is ``revision - 1``) and raises
  :class:`NodeChanged` when another process changed the node in between (the fleet reads it
  again and retries);
- a node handed to ``put_node`` or returned by a read is never changed in place by anyone
  (changes are new objects made with ``model_copy(update=...)``), so the memory registry can
  hand out its own objects instead of copying them;
- the hot and fleet-wide paths have their own operations (``heartbeat_node``, ``mark_inactive``,
  ``health_targets``) so that a heartbeat or a liveness sweep never reads and copies the whole
  fleet: a shared store answers them with one keyed update or one indexed query. The defaults
  here are correct but plain (get, then put); backends override them with cheaper ones;
- ``claim_idempotency_key`` is atomic: of two callers with one key, exactly one gets ``None``;
- ``append_event`` hands out ids that increase by exactly one, never reused, and keeps at least
  the newest ``keep`` events for ``recent_events`` (a client resuming with ``Last-Event-ID``);
- a ``shared`` registry is one fleet for several processes: its event log is read back by every
  process (``tail_events``), the liveness sweep runs only where ``hold_lease`` says so, and
  ``finish_result`` decides which final result of a command wins.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from lightd_shared.commands import FINAL_STATUSES, CommandResult
from lightd_shared.nodes import NodeRecord, NodeState
from lightd_shared.remote import ConfigDocument
from lightd_shared.services import Service
from lightd_shared.timestamps import Timestamp

__all__ = [
    "HeartbeatOutcome",
    "NodeChanged",
    "Registry",
    "RegistryUnavailable",
    "StoredEvent",
    "StoredNode",
]


class RegistryUnavailable(Exception):
    """The store cannot be reached right now (a shared store's server is down or restarting).

    The API answers it with ``503`` and this message; the registry reconnects by itself.
    """


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
    operator_registered: bool = Field(
        default=False,
        description="Last registered by an operator: an agent token may not re-register it "
        "unless it proves the node's dispatch key",
    )


class StoredEvent(BaseModel):
    """One published event: its id and the exact JSON envelope that was sent."""

    id: int
    node_id: str | None = None
    type: str
    body: str


class NodeChanged(Exception):
    """``put_node`` lost a race: another process changed (or created) the node since the read."""


class HeartbeatOutcome(BaseModel):
    """What one heartbeat changed: the node's new state and what became different.

    ``record`` may be ``None`` when neither the status nor the services changed (a shared
    store then spares sending the whole record back); ``status``, ``last_seen`` and
    ``active_since`` are always there, enough for the heartbeat's answer.
    """

    record: NodeRecord | None
    previous_status: NodeState
    services_changed: bool
    status: NodeState
    last_seen: datetime
    active_since: datetime


def apply_heartbeat(
    node: StoredNode, seen: datetime, status: NodeState, services: list[Service] | None
) -> tuple[StoredNode, HeartbeatOutcome]:
    """The node after one heartbeat (a new object; ``node`` is left as it was).

    ``services`` ``None`` keeps what the node reported before. Nothing is validated again: the
    heartbeat was validated at the edge and the rest of the record is unchanged.
    """
    was = node.record.status
    record = node.record.model_copy(update={"last_seen": seen, "status": status})
    changed = services is not None and services != node.services
    since = seen if status == "active" and was != "active" else node.active_since
    updated = node.model_copy(
        update={
            "record": record,
            "services": node.services if services is None else services,
            "active_since": since,
            "revision": node.revision + 1,
        }
    )
    return updated, HeartbeatOutcome(
        record=record,
        previous_status=was,
        services_changed=changed,
        status=status,
        last_seen=seen,
        active_since=since,
    )


def mark_node_inactive(node: StoredNode) -> StoredNode:
    """The node marked ``inactive`` by the liveness sweep (a new object)."""
    record = node.record.model_copy(update={"status": "inactive"})
    return node.model_copy(update={"record": record, "revision": node.revision + 1})


class Registry(ABC):
    """Storage for the fleet. Implementations are safe to call from one event loop."""

    provider: str = "abstract"
    persistent: bool = False
    shared: bool = False
    """Several coordinator processes use this one store (see the module's rules)."""
    atomic_heartbeat: bool = False
    """``heartbeat_node`` is one atomic step of its own (the fleet takes no lock around it)."""

    def __init__(self) -> None:
        self._remote_configs: dict[str, ConfigDocument] = {}

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create tables, connect)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store."""

    # -- nodes ---------------------------------------------------------------------------
    @abstractmethod
    async def get_node(self, node_id: str) -> StoredNode | None: ...

    @abstractmethod
    async def put_node(self, node: StoredNode) -> None: ...

    async def create_node(self, node: StoredNode) -> bool:
        """Store ``node`` only if its id is unknown, in one step; ``False``: the id exists.

        A brand-new node's registration is this one round trip (the fleet falls back to read,
        then compare-and-set, when the id exists). The default is correct but plain (get, then
        put); backends override it with one atomic create-if-absent.
        """
        if await self.get_node(node.record.id) is not None:
            return False
        await self.put_node(node)
        return True

    async def create_node_announced(
        self, node: StoredNode, *, type: str, body: str, keep: int
    ) -> int | None:
        """:meth:`create_node`, and only if it stored the node, :meth:`append_event` for it.

        The event's id, or ``None`` when the id exists (nothing stored, no event). A brand-new
        node's registration is this one call: its record and its ``node_registered`` event
        (``body``, under the node's id) land together. The default makes the two calls in
        turn, one step for memory (whose calls never wait); sqlite overrides it with one
        transaction, redis with one script (one round trip).
        """
        if not await self.create_node(node):
            return None
        return await self.append_event(node.record.id, type, body, keep)

    @abstractmethod
    async def delete_node(self, node_id: str) -> bool: ...

    @abstractmethod
    async def list_nodes(self) -> list[StoredNode]:
        """Every node, ordered by id."""

    async def heartbeat_node(
        self, node_id: str, seen: datetime, status: NodeState, services: list[Service] | None
    ) -> HeartbeatOutcome | None:
        """Record one heartbeat (``last_seen``, ``status``, maybe ``services``); None: unknown.

        One keyed read-modify-write: never touches any other node.
        """
        node = await self.get_node(node_id)
        if node is None:
            return None
        updated, outcome = apply_heartbeat(node, seen, status, services)
        await self.put_node(updated)
        return outcome

    async def mark_inactive(self, cutoff: datetime) -> list[NodeRecord]:
        """Mark every ``active`` node last seen before ``cutoff`` inactive; return those, by id.

        Only the nodes that changed are returned (and copied): the sweep runs every
        ``health_check_interval`` over the whole fleet and usually finds none.
        """
        went: list[NodeRecord] = []
        for node in await self.list_nodes():
            if node.record.status == "active" and node.record.last_seen < cutoff:
                updated = mark_node_inactive(node)
                await self.put_node(updated)
                went.append(updated.record)
        return went

    async def query_nodes(
        self,
        *,
        status: NodeState | None = None,
        provider: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[StoredNode], int]:
        """One page of the nodes matching every filter (by id) and how many match in all."""
        wanted = labels or {}
        matching = [
            node
            for node in await self.list_nodes()
            if (status is None or node.record.status == status)
            and (provider is None or node.record.provider == provider)
            and all(node.record.labels.get(k) == v for k, v in wanted.items())
        ]
        end = None if limit is None else offset + limit
        return matching[offset:end], len(matching)

    async def count_nodes(self) -> tuple[int, int]:
        """``(all nodes, active nodes)``."""
        nodes = await self.list_nodes()
        return len(nodes), sum(1 for n in nodes if n.record.status == "active")

    async def sweep_inactive(
        self, cutoff: datetime, envelope: Callable[[NodeRecord], str], *, keep: int
    ) -> list[NodeRecord] | None:
        """Shared stores: :meth:`mark_inactive` and the ``node_inactive`` events (``envelope``
        makes each body) in one atomic step; ``None``: not offered (mark, then publish)."""
        return None

    async def health_targets(self) -> list[tuple[str, str]]:
        """``(node id, health_url)`` of every node that has a ``health_url``, by id."""
        return [
            (node.record.id, str(node.record.health_url))
            for node in await self.list_nodes()
            if node.record.health_url
        ]

    # -- command results -----------------------------------------------------------------
    @abstractmethod
    async def put_result(self, result: CommandResult, expires_at: datetime) -> None: ...

    @abstractmethod
    async def get_result(self, command_id: str) -> CommandResult | None: ...

    @abstractmethod
    async def purge_results(self, now: datetime) -> int:
        """Forget results (and idempotency keys) that expired before ``now``; how many went."""

    async def finish_result(self, result: CommandResult, expires_at: datetime) -> CommandResult:
        """Store a final result unless the command already has one; return the one that won."""
        stored = await self.get_result(result.id)
        if stored is not None and stored.status in FINAL_STATUSES:
            return stored
        await self.put_result(result, expires_at)
        return result

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

    async def oldest_event_id(self) -> int:
        """The id of the oldest event still kept (``last_event_id() + 1`` when none is)."""
        kept = await self.recent_events(1_000_000_000)
        return kept[0].id if kept else await self.last_event_id() + 1

    async def events_after(self, after: int, limit: int) -> list[StoredEvent]:
        """The kept events with an id above ``after``, oldest first, at most ``limit``."""
        return [e for e in await self.recent_events(1_000_000_000) if e.id > after][:limit]

    async def tail_events(self, after: int, *, timeout: float) -> list[StoredEvent]:
        """Events above ``after``, waiting up to ``timeout`` seconds for one (shared stores)."""
        raise NotImplementedError(f"the {self.provider} registry is not shared")

    # -- coordination between replicas ---------------------------------------------------
    async def hold_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds; whether ``holder`` has it.

        One process alone always holds it; a shared store gives it to one holder at a time.
        """
        return True

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`RegistryUnavailable` when the store cannot be reached."""

    # -- what agents push to /api/v1/remote/{node_id}/config ----------------------------
    async def get_remote_config(self, node_id: str) -> ConfigDocument | None:
        """The document the node last pushed (kept in this process unless the store is shared)."""
        return self._remote_configs.get(node_id)

    async def put_remote_config(self, node_id: str, document: ConfigDocument) -> None:
        self._remote_configs[node_id] = document
