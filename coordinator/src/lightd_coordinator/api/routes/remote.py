"""``/api/v1/remote/{node_id}``: the coordinator as a lightd remote (seed 000's contract).

An agent whose ``remote.url`` is ``http://coordinator:3001/api/v1/remote/<node_id>`` and whose
``remote.token`` is the coordinator's ``auth.agent_token`` syncs its lifecycle here:

- ``GET  /health``  ``{"status": 200, "endpoint": "active"}``
- ``POST /update``  the seed's body; answered ``{"success": true}`` and published on ``/ws`` as
  a ``server_update`` event (:class:`~lightd_shared.events.ServerUpdate`,
  ``{"node", "server", "update": <the body>}``; ``node`` is the path's, proven, id). A repeated
  ``Idempotency-Key`` (the agent's outbox retrying after a lost answer) is acknowledged again
  but published only once.
- ``GET/POST /config``  the last document the node pushed (``{"containers": [], "settings": {}}``
  before any), kept in this process (in Redis with the ``redis`` registry, for every replica).

Only ``/health`` answers for any id (it keeps nothing). Updates and configurations are taken
only for a registered node: anyone with the shared agent token could otherwise fill the
coordinator's memory, event history and database with bodies for made-up ids, or plant a
configuration under an id a node has yet to enrol with. For an id that is not registered an
agent-token caller gets ``403`` (which the agent's outbox keeps and retries, so updates made
between the agent's start and its enrolment are delivered once it has enrolled), an operator
``404``.

Once the node is enrolled with a dispatch key, an agent-token caller must also send the node's
proof (``X-Lightd-Node-Proof``, see :func:`lightd_coordinator.api.deps.vouch_for`), else ``403``:
the agent token is shared by every agent, so without it any agent host could post updates, or
overwrite the pushed configuration, in another node's name. Unknown and keyless nodes need no
proof (nothing to prove yet); operators never do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path

from lightd_coordinator.api.deps import AgentAuthDep, CoordinatorDep, NodeProofDep, vouch_for
from lightd_shared.dispatch import IDEMPOTENCY_HEADER
from lightd_shared.events import ServerUpdate
from lightd_shared.remote import ConfigDocument, RemoteHealth, RemoteUpdate, UpdateAck
from lightd_shared.routing import GuardFirstRoute, guard
from lightd_shared.timestamps import utcnow

NodeId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="The sending node's id (its remote.url ends with it)",
    ),
]


@guard
async def _speaks_for_node(
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    node_id: NodeId,
    proof: NodeProofDep = None,
) -> None:
    """The agent token opens these routes; an enrolled node's id also needs its proof."""
    await vouch_for(coordinator, principal, node_id, proof)


async def _registered(
    coordinator: CoordinatorDep, principal: AgentAuthDep, node_id: NodeId
) -> None:
    """403 (agent token) or 404 (operator) unless ``node_id`` is a registered node."""
    if await coordinator.fleet.get(node_id) is not None:
        return
    detail = (
        f"node {node_id!r} is not registered: this coordinator takes updates and "
        "configurations only for registered nodes; enrol it (coordinator.enabled on the agent)"
    )
    if principal.is_operator:
        raise HTTPException(status_code=404, detail=detail)
    raise HTTPException(status_code=403, detail=detail)


Registered = [Depends(_registered)]

router = APIRouter(
    prefix="/api/v1/remote/{node_id}",
    tags=["remote"],
    dependencies=[Depends(_speaks_for_node)],
    route_class=GuardFirstRoute,
)
_DEDUP_WINDOW = timedelta(hours=24)


@router.get("/health", response_model=RemoteHealth)
async def remote_health(node_id: NodeId) -> RemoteHealth:
    """The seed's health answer: the coordinator is up and takes updates."""
    return RemoteHealth(status=200, endpoint="active")


@router.post("/update", response_model=UpdateAck, dependencies=Registered)
async def remote_update(
    node_id: NodeId,
    update: Annotated[RemoteUpdate, Body()],
    coordinator: CoordinatorDep,
    idempotency_key: Annotated[
        str | None, Header(alias=IDEMPOTENCY_HEADER, min_length=1, max_length=255)
    ] = None,
) -> UpdateAck:
    """Publish one lifecycle update as ``server_update``; repeats of a key are acked only."""
    if idempotency_key is not None:
        earlier = await coordinator.registry.claim_idempotency_key(
            f"remote:{node_id}\n{idempotency_key}", "remote-update", utcnow() + _DEDUP_WINDOW
        )
        if earlier is not None:
            return UpdateAck(success=True)
    data = ServerUpdate(node=node_id, server=update.server, update=update)
    await coordinator.hub.publish("server_update", data, node_id=node_id)
    return UpdateAck(success=True)


@router.get("/config", response_model=ConfigDocument, dependencies=Registered)
async def get_remote_config(node_id: NodeId, coordinator: CoordinatorDep) -> ConfigDocument:
    """What the node last pushed (an empty document before it pushed anything)."""
    return await coordinator.registry.get_remote_config(node_id) or ConfigDocument()


@router.post("/config", response_model=UpdateAck, dependencies=Registered)
async def post_remote_config(
    node_id: NodeId, document: ConfigDocument, coordinator: CoordinatorDep
) -> UpdateAck:
    """Keep the node's pushed configuration (its servers and settings, token masked)."""
    await coordinator.registry.put_remote_config(node_id, document)
    return UpdateAck(success=True)
