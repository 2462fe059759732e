"""``GET /events``: this agent's lifecycle events as Server-Sent Events, each with an ``id:``.

A client that reconnects with ``Last-Event-ID`` first gets the kept events after that id. Ids
grow across agent restarts (see :class:`~lightd_agent.events.EventBus`), so an id from before a
restart replays everything the new process still keeps. A malformed id is a 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.exceptions import RequestValidationError
from sse_starlette.sse import EventSourceResponse

from lightd_agent.api.deps import Authorized, BusDep
from lightd_agent.events import LifecycleEvent
from lightd_shared.containers import ServerEvent
from lightd_shared.events import EVENT_ID_PATTERN, parse_event_id

router = APIRouter(tags=["events"], dependencies=[Authorized])


def to_wire(event: LifecycleEvent) -> ServerEvent:
    return ServerEvent(
        id=event.id,
        server=event.server,
        kind=event.kind,
        state=event.state,
        error=event.error,
        data=event.data,
        exit_code=event.exit_code,
        timestamp=event.timestamp,
    )


@router.get(
    "/events",
    summary="Lifecycle events (SSE)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    bus: BusDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", json_schema_extra={"pattern": EVENT_ID_PATTERN}),
    ] = None,
) -> EventSourceResponse:
    after = None
    if last_event_id:
        try:
            after = parse_event_id(last_event_id)
        except ValueError as exc:
            # the agent's one 422 shape ({"detail": "<text>", "errors": [...]}), as for a body
            raise RequestValidationError(
                [{"loc": ("header", "Last-Event-ID"), "msg": str(exc), "type": "value_error"}]
            ) from None
    subscription = bus.subscribe(after=after)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in subscription:
                yield {
                    "id": str(event.id),
                    "event": event.kind,
                    "data": to_wire(event).model_dump_json(),
                }
        finally:
            subscription.close()

    return EventSourceResponse(stream(), ping=15)
