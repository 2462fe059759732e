"""``GET .../containers/{server}/logs?follow=true``: the agent's log follow relayed as SSE.

Called from the ``logs`` route in :mod:`containers`; the relaying and its bounds live in
:mod:`lightd_coordinator.logstream`.
"""

from __future__ import annotations

from fastapi import HTTPException
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from lightd_coordinator.core import Coordinator
from lightd_coordinator.logstream import FollowRefused

__all__ = ["MAX_TAIL", "follow_response"]

MAX_TAIL = 10_000
"""The agent's own bound on a follow's ``tail``."""


async def follow_response(
    coordinator: Coordinator, node_id: str, server: str, tail: int | None
) -> EventSourceResponse:
    if tail is not None and tail > MAX_TAIL:
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "loc": ["query", "tail"],
                    "msg": f"a log follow starts with at most {MAX_TAIL} lines",
                    "type": "value_error",
                }
            ],
        )
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    key = await coordinator.fleet.dispatch_key(node_id)
    try:
        stream = await coordinator.follower.open(node, key, server, tail)
    except FollowRefused as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    return EventSourceResponse(
        stream.events(),
        ping=15,
        background=BackgroundTask(stream.close),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
