"""The event stream (``websocket.path``, ``/ws`` by default): Server-Sent Events.

Each message is ``id: <n>`` plus ``data: {"type", "timestamp", "data"}`` and no ``event:`` line,
so a browser's ``EventSource.onmessage`` sees every type. Keep-alive comments go out every
``websocket.ping_period``; the stream has no time limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.events import SSE_SEPARATOR, EventHub, Subscriber, sse_frame
from lightd_shared.events import EVENT_ID_PATTERN, parse_event_id

__all__ = ["build_router"]

log = logging.getLogger(__name__)

_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
_RETRY_MS = 2000
_TYPES_PATTERN = r"^\s*([a-z][a-z0-9_]*)?\s*(,\s*([a-z][a-z0-9_]*)?\s*)*$"


def _invalid(where: str, message: str) -> HTTPException:
    return HTTPException(
        status_code=422, detail=[{"loc": where.split("."), "msg": message, "type": "value_error"}]
    )


def _last_id(header: str | None, query: str | None) -> int | None:
    for where, value in (("header.Last-Event-ID", header), ("query.last_event_id", query)):
        if value is None or value == "":
            continue
        try:
            return parse_event_id(value)
        except ValueError as exc:
            raise _invalid(where, str(exc)) from None
    return None


def _types(value: str | None) -> frozenset[str] | None:
    if value is None or value.strip() == "":
        return None
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    bad = sorted(name for name in names if not _TYPE.fullmatch(name))
    if bad:
        raise _invalid("query.types", f"event types are lower-case words, not {bad[0][:40]!r}")
    return names


class EventStream(EventSourceResponse):
    """An SSE response that ends at once when the hub drops its subscriber (slow consumer)."""

    def __init__(self, hub: EventHub, subscriber: Subscriber, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._hub = hub
        self._subscriber = subscriber

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    await self._subscriber.kicked.wait()
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await super().__call__(scope, receive, tracked)
                group.cancel_scope.cancel()
        finally:
            self._hub.unsubscribe(self._subscriber)
        if self._subscriber.reason is not None and started:
            # End the chunked body so the client sees a clean end and reconnects; a client
            # that does not read at all is cut off by the server when this cannot be sent.
            with anyio.move_on_after(1):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def build_router(path: str) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get(
        path,
        dependencies=[Depends(require_auth)],
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
    )
    async def events(
        request: Request,
        coordinator: CoordinatorDep,
        # the patterns document what the checks below take; they answer their own messages
        last_event_id_header: Annotated[
            str | None,
            Header(alias="Last-Event-ID", json_schema_extra={"pattern": EVENT_ID_PATTERN}),
        ] = None,
        last_event_id: Annotated[
            str | None,
            Query(
                description="Resume after this id",
                json_schema_extra={"pattern": EVENT_ID_PATTERN},
            ),
        ] = None,
        types: Annotated[
            str | None,
            Query(
                description="Comma-separated event types",
                json_schema_extra={"pattern": _TYPES_PATTERN},
            ),
        ] = None,
        node: Annotated[str | None, Query(description="Only events about this node id")] = None,
        token: Annotated[str | None, Query(description="Bearer token (EventSource)")] = None,
    ) -> EventSourceResponse:
        """Live events; resume with ``Last-Event-ID``; filter with ``?types=a,b&node=ID``."""
        del token  # read by require_auth
        resume = _last_id(last_event_id_header, last_event_id)
        wanted = _types(types)
        hub = coordinator.hub
        client = request.client
        peer = f"{client.host}:{client.port}" if client else "unknown"
        subscriber, backlog = await hub.subscribe(
            last_event_id=resume, types=wanted, node=node or None, peer=peer
        )
        log.info(
            "event stream client %s (%s) connected%s",
            subscriber.number,
            peer,
            f", resuming after event {resume}" if resume is not None else "",
        )

        async def stream() -> AsyncIterator[bytes]:
            try:
                first = True
                for event in backlog:
                    subscriber.last_sent = event.id
                    yield sse_frame(event, retry=_RETRY_MS if first else None)
                    first = False
                while True:
                    item = await subscriber.queue.get()
                    if item is None:
                        return
                    event, frame = item
                    if event.id <= subscriber.last_sent:
                        continue  # already sent from the backlog (a shared log's overlap)
                    subscriber.last_sent = event.id
                    # the hub encoded this frame once for every subscriber; only a stream's
                    # first message (which carries ``retry:``) is encoded here
                    yield sse_frame(event, retry=_RETRY_MS) if first else frame
                    first = False
            finally:
                hub.unsubscribe(subscriber)
                log.info(
                    "event stream client %s (%s) closed after event %s",
                    subscriber.number,
                    peer,
                    subscriber.last_sent,
                )

        return EventStream(
            hub,
            subscriber,
            content=stream(),
            ping=coordinator.settings.websocket.ping_period.total_seconds(),
            sep=SSE_SEPARATOR,
        )

    return router
