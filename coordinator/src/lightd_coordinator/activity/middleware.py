"""Record each mutating API call in the activity log as it answers.

Innermost of the middleware, around the router: by the time the route answers, the
router has put the matched route (its template) and path parameters in the scope, and the auth
dependency has named the caller in the request's :class:`~lightd_coordinator.activity.context.Note`.

A call is recorded only once the caller is known: one refused before (no token or a wrong one:
``401``; too many failures: ``429``; a body over the limit: ``413``) is not, so a client without
a token cannot push real entries out of the bounded log (those refusals are in the access log).
Every call it may record answers with ``X-Request-ID``, the id its entries carry. The entry
is stored before the answer's last byte is sent, so a caller that has its answer can read it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightd_coordinator.activity.actions import MUTATING, action_of
from lightd_coordinator.activity.context import (
    REQUEST_ID_HEADER,
    Note,
    current_note,
    new_request_id,
)

if TYPE_CHECKING:
    from lightd_coordinator.core import Coordinator

__all__ = ["ActivityMiddleware", "request_note"]

log = logging.getLogger(__name__)

_HEADER = REQUEST_ID_HEADER.lower().encode()


def request_note(scope: Scope) -> Note:
    """A request's note: its id the caller's ``X-Request-ID`` (the last one) when it fits."""
    offered = None
    for name, value in scope.get("headers") or []:
        if name == _HEADER:
            offered = value.decode("latin-1")
    return Note(request_id=new_request_id(offered))


class ActivityMiddleware:
    def __init__(self, app: ASGIApp, coordinator: Coordinator) -> None:
        self.app = app
        self.coordinator = coordinator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        activity = self.coordinator.activity
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING
            or not scope["path"].startswith("/api/")
            or not activity.enabled
        ):
            await self.app(scope, receive, send)
            return
        note = request_note(scope)
        status = 500
        recorded = False

        async def answer(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", []), (_HEADER, note.request_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # recorded before the answer ends: a caller that has its answer finds the entry
                recorded = True
                await self._record(scope, note, status)
            await send(message)

        token = current_note.set(note)
        try:
            await self.app(scope, receive, answer)
        except asyncio.CancelledError:
            raise  # the client went away: nothing answered, nothing to record
        except Exception:
            if not recorded:
                await self._record(scope, note, 500)
            raise
        finally:
            current_note.reset(token)

    async def _record(self, scope: Scope, note: Note, status: int) -> None:
        route = getattr(scope.get("route"), "path", None)
        if note.subject is None or not isinstance(route, str):
            return
        action = action_of(scope["method"], route)
        if action is None:
            return
        await self.coordinator.activity.request(
            note,
            method=scope["method"],
            route=route,
            action=action,
            status=status,
            params=scope.get("path_params") or {},
        )
