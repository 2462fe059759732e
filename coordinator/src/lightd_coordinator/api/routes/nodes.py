"""``/api/v1/nodes``: registry, heartbeats, status, command dispatch and event relay per node."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from lightd_coordinator.activity.context import note_target
from lightd_coordinator.api.deps import (
    AgentAuthDep,
    CoordinatorDep,
    NodeProofDep,
    require_auth,
    vouch_for,
)
from lightd_coordinator.api.errors import invalid
from lightd_coordinator.fleet import NodeClaimed, NodeFilter
from lightd_shared.commands import Command, CommandResult
from lightd_shared.dispatch import IDEMPOTENCY_HEADER, NEXT_HEARTBEAT_HEADER
from lightd_shared.events import RelayedEvent
from lightd_shared.nodes import (
    Heartbeat,
    NodeList,
    NodeRecord,
    NodeRegistration,
    NodeRemoved,
    NodeState,
    NodeStatusView,
    NodeUpdate,
)
from lightd_shared.routing import GuardFirstRoute

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"], route_class=GuardFirstRoute)
Operator = [Depends(require_auth)]
"""Agents (``auth.agent_token``) may register, heartbeat and relay (each route takes the
principal, to check the node proof); the rest is operators'."""

NodeId = Annotated[str, Path(description="The node's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=255,
        description="Repeat a request with the same key to get the first result back",
    ),
]


class Relayed(BaseModel):
    event_id: int


def _not_found(node_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")


def _parse_labels(values: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise invalid(["query", "label"], f"label filter {value!r} must look like key=value")
        labels[key] = wanted
    return labels


@router.post(
    "",
    response_model=NodeRecord,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "An existing node was updated", "model": NodeRecord},
        409: {"description": "The id is enrolled by an agent holding another dispatch key"},
    },
)
async def register_node(
    registration: NodeRegistration,
    coordinator: CoordinatorDep,
    response: Response,
    principal: AgentAuthDep,
    proof: NodeProofDep = None,
) -> NodeRecord:
    """Register a node; registering an existing id updates it and keeps its ``created_at``.

    With the agent token, an id already enrolled with a dispatch key needs the node's proof
    (``X-Lightd-Node-Proof``); without it the answer is ``409``.
    """
    note_target(node=registration.id)  # the id is in the body: the activity log's entry names it
    try:
        record, created = await coordinator.fleet.register(
            registration, proof=proof, vouch=not principal.is_operator
        )
    except NodeClaimed as exc:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return record


@router.get("", response_model=NodeList, dependencies=Operator)
async def list_nodes(
    coordinator: CoordinatorDep,
    status: NodeState | None = None,
    provider: str | None = None,
    label: Annotated[
        list[str],
        Query(
            description="key=value; repeat to require several",
            json_schema_extra={"items": {"type": "string", "pattern": "^[^=]+="}},
        ),
    ] = [],  # noqa: B006
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> NodeList:
    """List nodes; ``count`` is the number matching the filters, before paging."""
    node_filter = NodeFilter(status=status, provider=provider, labels=_parse_labels(label))
    nodes, total = await coordinator.fleet.query(node_filter, limit=limit, offset=offset)
    return NodeList(nodes=nodes, count=total)


@router.get("/{node_id}", response_model=NodeRecord, dependencies=Operator)
async def get_node(node_id: NodeId, coordinator: CoordinatorDep) -> NodeRecord:
    record = await coordinator.fleet.get(node_id)
    if record is None:
        raise _not_found(node_id)
    return record


@router.put("/{node_id}", response_model=NodeRecord, dependencies=Operator)
async def update_node(
    node_id: NodeId, update: NodeUpdate, coordinator: CoordinatorDep
) -> NodeRecord:
    """Partial update: only the fields given change."""
    record = await coordinator.fleet.update(node_id, update)
    if record is None:
        raise _not_found(node_id)
    return record


@router.delete("/{node_id}", response_model=NodeRemoved, dependencies=Operator)
async def unregister_node(node_id: NodeId, coordinator: CoordinatorDep) -> NodeRemoved:
    if await coordinator.fleet.remove(node_id) is None:
        raise _not_found(node_id)
    await coordinator.history.forget(node_id)
    return NodeRemoved(message=f"node {node_id} unregistered", node_id=node_id)


@router.get("/{node_id}/status", response_model=NodeStatusView, dependencies=Operator)
async def node_status(node_id: NodeId, coordinator: CoordinatorDep) -> NodeStatusView:
    view = await coordinator.fleet.status(node_id)
    if view is None:
        raise _not_found(node_id)
    return view


@router.post("/{node_id}/heartbeat", response_model=NodeStatusView)
async def heartbeat(
    node_id: NodeId,
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    beat: Annotated[Heartbeat | None, Body()] = None,
    proof: NodeProofDep = None,
) -> Response:
    """The node is alive; it may report its services. An inactive node becomes active.

    In a fleet larger than ``registry.max_heartbeat_rate * registry.heartbeat_interval`` the
    answer carries ``X-Lightd-Next-Heartbeat: <seconds>``: when to beat next.
    """
    await vouch_for(coordinator, principal, node_id, proof)
    view = await coordinator.fleet.heartbeat(node_id, beat)
    if view is None:
        raise _not_found(node_id)
    # Serialized here, not validated again against the response model: the hottest route,
    # and the view was built from already valid values.
    answer = Response(view.model_dump_json(), media_type="application/json")
    wait = coordinator.next_heartbeat
    if wait is not None:  # a large fleet: beat less often (see registry.max_heartbeat_rate)
        answer.headers[NEXT_HEARTBEAT_HEADER] = f"{wait:.3f}"
    return answer


@router.post(
    "/{node_id}/commands",
    response_model=CommandResult,
    dependencies=Operator,
    responses={202: {"description": "Accepted (?async=true): poll GET /api/v1/commands/{id}"}},
)
async def send_command(
    node_id: NodeId,
    command: Command,
    coordinator: CoordinatorDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    run_async: Annotated[bool, Query(alias="async")] = False,
) -> CommandResult:
    """Send a command to the node's agent and answer with its result (or 202 with ``async``)."""
    found = await coordinator.fleet.get_for_dispatch(node_id)
    if found is None:
        raise _not_found(node_id)
    node, key = found
    result, _ = await coordinator.dispatcher.submit(
        node, command, idempotency_key=idempotency_key, wait=not run_async, dispatch_key=key
    )
    if run_async:
        response.status_code = status.HTTP_202_ACCEPTED
    return result


@router.post(
    "/{node_id}/events",
    response_model=Relayed,
    status_code=status.HTTP_202_ACCEPTED,
)
async def relay_event(
    node_id: NodeId,
    event: RelayedEvent,
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    proof: NodeProofDep = None,
) -> Relayed:
    """A node relays one of its own events (``server_update``) to ``/ws`` subscribers.

    The event names the node of the path, which the caller proved to be (``vouch_for``); a
    ``node`` in the body is ignored, so no node can publish an event naming another.
    """
    await vouch_for(coordinator, principal, node_id, proof)
    if await coordinator.fleet.get(node_id) is None:
        raise _not_found(node_id)
    event_id = await coordinator.hub.publish(
        event.type, event.data.stamped(node_id), node_id=node_id
    )
    return Relayed(event_id=event_id)
