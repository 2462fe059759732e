"""``POST /api/v1/nodes/{id}/schedule-events``: a node relays its schedules' runs to ``/ws``.

Beside ``POST /api/v1/nodes/{id}/events`` (``server_update`` only), with the same trust: the
agent token and the node proof (``vouch_for``), so a node publishes only events naming itself;
a ``node`` in the body is ignored. Each becomes a ``schedule_started``, ``schedule_task``,
``schedule_finished`` or ``schedule_skipped`` event with data ``{"node", "server", "event"}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel

from lightd_coordinator.api.deps import AgentAuthDep, CoordinatorDep, NodeProofDep, vouch_for
from lightd_shared.events import RelayedScheduleEvent
from lightd_shared.routing import GuardFirstRoute

__all__ = ["SCHEDULE_EVENTS_PATH", "router"]

SCHEDULE_EVENTS_PATH = "/api/v1/nodes/{node_id}/schedule-events"

router = APIRouter(tags=["nodes"], route_class=GuardFirstRoute)


class RelayedScheduleAnswer(BaseModel):
    event_id: int


@router.post(
    SCHEDULE_EVENTS_PATH,
    response_model=RelayedScheduleAnswer,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Relay a schedule's run event to /ws",
)
async def relay_schedule_event(
    node_id: Annotated[str, Path(description="The node's id")],
    event: RelayedScheduleEvent,
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    proof: NodeProofDep = None,
) -> RelayedScheduleAnswer:
    await vouch_for(coordinator, principal, node_id, proof)
    if await coordinator.fleet.get(node_id) is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    event_id = await coordinator.hub.publish(
        event.type, event.data.stamped(node_id), node_id=node_id
    )
    return RelayedScheduleAnswer(event_id=event_id)
