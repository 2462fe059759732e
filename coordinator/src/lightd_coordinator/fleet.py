"""The node fleet: registration, updates, heartbeats and liveness, each followed by its event.

Routes and background tasks change nodes only through :class:`Fleet`, so every change of one
node is made under that node's lock (no lost updates between a registration, an update and a
heartbeat of one node) and announced on ``/ws``; the sweep takes the fleet lock. No lock is
held while a registration's proof is verified (the slow part: a signature check), and two
nodes' registrations never wait for each other.

Over 400 lines on purpose: it is one idea, the only writer of node state (registration with
its proofs, updates, heartbeats and the sweep share the per-node locks and their events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from lightd_coordinator.events import EventHub
from lightd_coordinator.registry.base import HeartbeatOutcome, NodeChanged, Registry, StoredNode
from lightd_coordinator.security import InvalidToken, verify_node_proof
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.nodes import (
    Heartbeat,
    NodeRecord,
    NodeRegistration,
    NodeState,
    NodeStatusView,
    NodeUpdate,
)
from lightd_shared.services import Service, ServiceListing
from lightd_shared.timestamps import utcnow
from lightd_shared.tokens import tokens_equal

__all__ = ["Fleet", "NodeClaimed", "NodeFilter"]

log = logging.getLogger(__name__)

_RETRIES = 20
"""Reads and writes again of a node a shared registry saw change in between (a heartbeat)."""


class NodeFilter:
    """``?status=&provider=&label=k=v`` of ``GET /api/v1/nodes``."""

    def __init__(
        self,
        *,
        status: NodeState | None = None,
        provider: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.provider = provider
        self.labels = labels or {}

    def matches(self, record: NodeRecord) -> bool:
        if self.status is not None and record.status != self.status:
            return False
        if self.provider is not None and record.provider != self.provider:
            return False
        return all(record.labels.get(key) == value for key, value in self.labels.items())


def _json(record: NodeRecord) -> dict[str, Any]:
    return record.model_dump(mode="json")


def _log_registered(record: NodeRecord, *, created: bool) -> None:
    log.info(
        "node %s %s at %s:%s",
        record.id,
        "registered" if created else "re-registered",
        record.address,
        record.port,
        extra={"node_id": record.id},
    )


class NodeClaimed(Exception):
    """A call spoke for an enrolled node without proving it holds the node's dispatch key."""


class Fleet:
    def __init__(self, registry: Registry, hub: EventHub, *, node_timeout: timedelta) -> None:
        self.registry = registry
        self.hub = hub
        self.node_timeout = node_timeout
        self._lock = asyncio.Lock()  # the sweep's
        self._node_locks: dict[str, asyncio.Lock] = {}
        self._proven: dict[str, tuple[str, float]] = {}
        self._proven_key: dict[str, str] = {}  # the key each of ``_proven`` was checked with
        """The last node proof verified per node and its ``exp``: a heartbeat repeating it
        costs neither a signature check nor a registry read."""

    @contextlib.asynccontextmanager
    async def _locked(self, node_id: str) -> AsyncIterator[None]:
        """One node's lock; forgotten once nobody holds or waits for it."""
        lock = self._node_locks.get(node_id)
        if lock is None:
            lock = self._node_locks[node_id] = asyncio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._node_locks.get(node_id) is lock:
                del self._node_locks[node_id]

    # -- who may speak for a node ------------------------------------------------------------
    async def vouch(self, node_id: str, proof: str | None, *, warn: bool = True) -> None:
        """Raise :class:`NodeClaimed` unless ``proof`` shows the caller holds the node's key.

        A node that is unknown, or registered without a dispatch key, is bound to no key, so
        there is nothing to prove (the route answers 404, or lets the agent enrol it).
        ``warn=False``: the refusal is not logged (a fast path hands the call to the route,
        which meets the refusal again and logs it once).
        """
        if proof:
            seen = self._proven.get(node_id)
            if seen is not None and seen[1] > time.time() and tokens_equal(proof, seen[0]):
                return
        self._check_proof(node_id, await self.dispatch_key(node_id), proof, warn=warn)

    def _proven_now(self, node_id: str, key: str | None, proof: str | None) -> bool:
        """``proof`` was verified a moment ago against this very ``key`` (no second check)."""
        seen = self._proven.get(node_id)
        return (
            key is not None
            and proof is not None
            and seen is not None
            and seen[1] > time.time()
            and tokens_equal(proof, seen[0])
            and self._proven_key.get(node_id) == key
        )

    def _check_proof(
        self, node_id: str, key: str | None, proof: str | None, *, warn: bool = True
    ) -> None:
        if key is None:
            return
        reason = f"no {NODE_PROOF_HEADER} header"
        if proof:
            try:
                self._proven[node_id] = (proof, verify_node_proof(proof, key, node_id=node_id))
                self._proven_key[node_id] = key
                return
            except InvalidToken as exc:
                reason = f"{NODE_PROOF_HEADER} refused: {exc}"
        if warn:
            log.warning(
                "refused a call for node %s: %s", node_id, reason, extra={"node_id": node_id}
            )
        raise NodeClaimed(
            f"node {node_id!r} is enrolled with a dispatch key and this call did not prove it "
            f"holds that key ({reason}). The agent token enrols new nodes only. If this is the "
            f"node's own host and it lost its state directory, an operator deletes the node "
            f"(DELETE /api/v1/nodes/{node_id}, or 'lightd-coordinator nodes delete {node_id}') "
            "and it enrols again; otherwise give this agent another node.id"
        )

    async def register(
        self,
        registration: NodeRegistration,
        *,
        proof: str | None = None,
        vouch: bool = False,
        warn: bool = True,
    ) -> tuple[NodeRecord, bool]:
        """Add a node, or update it when the id is known (keeping ``created_at``).

        ``vouch`` (an agent, not an operator, is calling): an id already enrolled with a dispatch
        key is updated only with a ``proof`` made with that key, and an id an operator
        registered without a key not at all (else :class:`NodeClaimed`): the agent token is
        shared by every agent, and would otherwise move the operator's node to another address.
        Checked under the fleet lock, so two hosts racing for one id cannot both win.
        ``warn=False``: a refused proof is not logged (see :meth:`vouch`).
        """
        for _ in range(_RETRIES):
            try:
                return await self._register(registration, proof=proof, vouch=vouch, warn=warn)
            except NodeChanged:
                continue  # another replica changed it meanwhile: read it again
        raise NodeChanged(f"node {registration.id!r} kept changing; try again")

    async def _register(
        self, registration: NodeRegistration, *, proof: str | None, vouch: bool, warn: bool
    ) -> tuple[NodeRecord, bool]:
        now = utcnow()
        seen: StoredNode | None = None
        if vouch and proof:
            # the signature check (the slow part) before any lock: against the key stored now;
            # under the node's lock below a changed key is checked again
            seen = await self.registry.get_node(registration.id)
            if seen is not None and seen.dispatch_key is not None:
                self._check_proof(registration.id, seen.dispatch_key, proof, warn=warn)
        async with self._locked(registration.id):
            if seen is None:
                # a brand-new id: one atomic create-if-absent with its event, one round trip
                # (no proof to check, nothing to compare); an id that exists takes the
                # read-then-set path
                fresh = _new_node(registration, now, vouch)
                registry = self.registry

                async def create(body: str, keep: int) -> int | None:
                    return await registry.create_node_announced(
                        fresh, type="node_registered", body=body, keep=keep
                    )

                event_id = await self.hub.publish_stored(
                    "node_registered", _json(fresh.record), node_id=registration.id, store=create
                )
                if event_id is not None:  # the record and its event, in one step
                    self._proven.pop(registration.id, None)
                    self._proven_key.pop(registration.id, None)
                    _log_registered(fresh.record, created=True)
                    return fresh.record, True
            existing = await self.registry.get_node(registration.id)
            if vouch and existing is not None:
                if existing.dispatch_key is None and existing.operator_registered:
                    raise NodeClaimed(
                        f"node {registration.id!r} was registered by an operator, without a "
                        "dispatch key, so the agent token cannot re-register it (it would move "
                        "the node to this caller's address). To let a lightd agent enrol under "
                        f"this id, an operator deletes the node first (DELETE "
                        f"/api/v1/nodes/{registration.id}, or 'lightd-coordinator nodes delete "
                        f"{registration.id}'); otherwise give this agent another node.id"
                    )
                if not self._proven_now(registration.id, existing.dispatch_key, proof):
                    self._check_proof(registration.id, existing.dispatch_key, proof, warn=warn)
            self._proven.pop(registration.id, None)  # the key may change with this registration
            self._proven_key.pop(registration.id, None)
            if existing is None:
                stored = _new_node(registration, now, vouch)
                record = stored.record
            else:
                record = NodeRecord.model_validate(
                    {
                        **registration.model_dump(),
                        "created_at": existing.record.created_at,
                        "last_seen": now,
                    }
                )
                was_active = existing.record.status == "active"
                stored = existing.model_copy(
                    update={
                        "record": record,
                        "active_since": existing.active_since if was_active else now,
                        "revision": existing.revision + 1,
                        "dispatch_key": registration.dispatch_key or existing.dispatch_key,
                        "operator_registered": not vouch,
                    }
                )
            await self.registry.put_node(stored)
            created = existing is None
            await self._announce(record, created=created)
        return record, created

    async def _announce(self, record: NodeRecord, *, created: bool) -> None:
        """The event and the log line of a registration that was stored."""
        await self.hub.publish(
            "node_registered" if created else "node_updated", _json(record), node_id=record.id
        )
        _log_registered(record, created=created)

    async def dispatch_key(self, node_id: str) -> str | None:
        """The key commands to ``node_id`` are signed with (``None``: unknown node or no key)."""
        stored = await self.registry.get_node(node_id)
        return stored.dispatch_key if stored is not None else None

    async def get_for_dispatch(self, node_id: str) -> tuple[NodeRecord, str | None] | None:
        """The node and its dispatch key from one registry read (the dispatch hot path)."""
        stored = await self.registry.get_node(node_id)
        return None if stored is None else (stored.record, stored.dispatch_key)

    async def get(self, node_id: str) -> NodeRecord | None:
        stored = await self.registry.get_node(node_id)
        return stored.record if stored is not None else None

    async def update(self, node_id: str, update: NodeUpdate) -> NodeRecord | None:
        """Apply a partial update; ``None`` if the node is unknown."""
        for _ in range(_RETRIES):
            try:
                return await self._update(node_id, update)
            except NodeChanged:
                continue  # another replica changed it meanwhile: read it again
        raise NodeChanged(f"node {node_id!r} kept changing; try again")

    async def _update(self, node_id: str, update: NodeUpdate) -> NodeRecord | None:
        changes = update.changes()
        async with self._locked(node_id):
            existing = await self.registry.get_node(node_id)
            if existing is None:
                return None
            merged = {**existing.record.model_dump(), **changes}
            record = NodeRecord.model_validate(merged)
            became_active = record.status == "active" and existing.record.status != "active"
            stored = existing.model_copy(
                update={
                    "record": record,
                    "active_since": utcnow() if became_active else existing.active_since,
                    "revision": existing.revision + 1,
                }
            )
            await self.registry.put_node(stored)
            await self.hub.publish("node_updated", _json(record), node_id=node_id)
        return record

    async def remove(self, node_id: str) -> NodeRecord | None:
        async with self._locked(node_id):
            existing = await self.registry.get_node(node_id)
            if existing is None or not await self.registry.delete_node(node_id):
                return None
            self._proven.pop(node_id, None)
            self._proven_key.pop(node_id, None)
            await self.hub.publish("node_unregistered", _json(existing.record), node_id=node_id)
        log.info("node %s unregistered", node_id, extra={"node_id": node_id})
        return existing.record

    async def heartbeat(self, node_id: str, beat: Heartbeat | None) -> NodeStatusView | None:
        """The node is alive (and maybe reports its services); ``None`` if it is unknown.

        One keyed registry update (one round trip to a shared store), answered from what it
        returns; ``node_updated`` only when the status or the services changed (a plain
        "still alive" changes nothing a ``/ws`` client shows but ``last_seen``). A registry
        whose heartbeat is atomic on its own needs no fleet lock around it.
        """
        now = utcnow()
        status: NodeState = beat.status if beat and beat.status else "active"
        services = beat.services if beat is not None else None
        if self.registry.atomic_heartbeat:
            outcome = await self._beat(node_id, now, status, services)
        else:
            async with self._locked(node_id):
                outcome = await self._beat(node_id, now, status, services)
        if outcome is None:
            return None
        if outcome.previous_status != status:
            log.info("node %s is %s again", node_id, status, extra={"node_id": node_id})
        uptime = (
            max(timedelta(0), now - outcome.active_since) if status == "active" else timedelta(0)
        )
        return NodeStatusView.model_construct(
            node_id=node_id,
            status=status,
            last_seen=outcome.last_seen,
            uptime=timedelta(seconds=int(uptime.total_seconds())),
        )

    async def _beat(
        self, node_id: str, now: datetime, status: NodeState, services: list[Service] | None
    ) -> HeartbeatOutcome | None:
        outcome = await self.registry.heartbeat_node(node_id, now, status, services)
        if outcome is None:
            return None
        if outcome.record is not None and (
            outcome.previous_status != status or outcome.services_changed
        ):
            await self.hub.publish("node_updated", _json(outcome.record), node_id=node_id)
        return outcome

    async def sweep(self, now: datetime | None = None) -> list[str]:
        """Mark every active node not seen for ``node_timeout`` inactive; return their ids."""
        now = now or utcnow()
        async with self._lock:
            hub = self.hub
            swept = await self.registry.sweep_inactive(
                now - self.node_timeout,
                lambda record: hub.envelope("node_inactive", _json(record)),
                keep=hub.history_size,
            )
            if swept is not None:  # marked and announced in one step (a shared registry)
                went = swept
            else:
                went = await self.registry.mark_inactive(now - self.node_timeout)
                for record in went:
                    await hub.publish("node_inactive", _json(record), node_id=record.id)
        for record in went:
            log.warning(
                "node %s not seen for %s: marked inactive; it becomes active again with its next "
                "heartbeat or registration",
                record.id,
                self.node_timeout,
                extra={"node_id": record.id},
            )
        return [record.id for record in went]

    async def query(
        self, node_filter: NodeFilter, *, limit: int | None, offset: int
    ) -> tuple[list[NodeRecord], int]:
        page, total = await self.registry.query_nodes(
            status=node_filter.status,
            provider=node_filter.provider,
            labels=node_filter.labels,
            limit=limit,
            offset=offset,
        )
        return [s.record for s in page], total

    async def all_records(self) -> list[NodeRecord]:
        return [s.record for s in await self.registry.list_nodes()]

    async def status(self, node_id: str) -> NodeStatusView | None:
        stored = await self.registry.get_node(node_id)
        if stored is None:
            return None
        record = stored.record
        uptime = (
            max(timedelta(0), utcnow() - stored.active_since)
            if record.status == "active"
            else timedelta(0)
        )
        uptime = timedelta(seconds=int(uptime.total_seconds()))
        return NodeStatusView(
            node_id=record.id, status=record.status, last_seen=record.last_seen, uptime=uptime
        )

    async def services(self) -> ServiceListing:
        nodes = await self.registry.list_nodes()
        reported: dict[str, list[Service]] = {
            s.record.id: list(s.services) for s in nodes if s.services is not None
        }
        # the seed's example: "nodes" is the whole fleet, the map only the nodes that reported
        return ServiceListing(services=reported, nodes=len(nodes))

    async def snapshot(self, node_id: str | None) -> dict[str, Any]:
        """The ``initial_state`` data: every node (or one) and the services they reported."""
        nodes = await self.registry.list_nodes()
        if node_id is not None:
            nodes = [s for s in nodes if s.record.id == node_id]
        return {
            "nodes": [_json(s.record) for s in nodes],
            "services": {
                s.record.id: [svc.model_dump(mode="json") for svc in s.services]
                for s in nodes
                if s.services is not None
            },
            "count": len(nodes),
        }


def _new_node(registration: NodeRegistration, now: datetime, vouch: bool) -> StoredNode:
    """A node seen for the first time, as a registration stores it."""
    record = NodeRecord.model_validate(
        {**registration.model_dump(), "created_at": now, "last_seen": now}
    )
    return StoredNode(
        record=record,
        active_since=now,
        dispatch_key=registration.dispatch_key,
        operator_registered=not vouch,
    )
