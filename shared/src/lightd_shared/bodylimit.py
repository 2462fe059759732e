"""``server.max_body_size``: bodies over the limit are refused with 413, before they fill memory.

Refused by ``Content-Length`` before a byte is read, and for a chunked body (no length) as soon
as what arrived passes the limit. The agent and the coordinator both use it, under the same
setting name.

A chunked body is only found too large while a route reads it, and FastAPI turns any exception
raised while it reads a body into 400 "There was an error parsing the body", except an
``HTTPException``: so :class:`_TooLarge` is one, and the answer is the same 413 either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (server.max_body_size)"


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large(limit))


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with ``413 {"detail": ...}``."""

    def __init__(
        self, app: ASGIApp, limit: int, exempt: Callable[[str], bool] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # a route with its own bound (a file upload: the agent's files.max_upload; the
        # coordinator relays it as a stream to the agent, which bounds it) reads past this one
        if scope["type"] != "http" or (self.exempt and self.exempt(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:  # read outside a route (FastAPI answers it inside one)
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": _too_large(self.limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
