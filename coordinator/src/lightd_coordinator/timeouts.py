"""``server.read_timeout`` and ``server.write_timeout`` for ordinary requests (never the stream).

uvicorn has no per-request read or write deadline, so this ASGI middleware adds them:

- read: the whole request body must arrive within ``read_timeout`` of the request's start,
  else the answer is ``408 Request Timeout``;
- write: every 64 KiB of the response must be taken by the client's connection within
  ``write_timeout``, else the connection is dropped (a client that stops reading cannot hold
  the server's buffers). The time the handler takes to compute the answer is not counted:
  a command's own ``params.timeout`` bounds that.

The write deadline costs one timer per ``send``, not a cancel scope per ``send``: one
:class:`asyncio.Timeout` wraps the whole request and its deadline is set just before each
``send`` and cleared right after, so the handler's own time is never counted. Entering and
leaving a scope for every message was a tenth of a heartbeat's CPU time under load. The
deadlines are asyncio's own (:func:`asyncio.timeout_at`), not anyio's cancel scopes: the
app runs on asyncio under uvicorn, and each anyio call asked sniffio which event loop runs
it first, about a tenth of a registration's CPU (py-spy, under ``wrk``).

``server.idle_timeout`` is uvicorn's ``timeout_keep_alive`` (see ``cli.serve``). Paths in
``exempt`` (the event stream) are passed through untouched: they stay open for hours.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestTimeout", "TimeoutMiddleware"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class RequestTimeout(HTTPException):
    """Raised from ``receive``; an ``HTTPException`` so FastAPI answers it as a 408."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            status_code=408,
            detail=f"the request body did not arrive within {seconds:g}s (server.read_timeout)",
        )


class TimeoutMiddleware:
    def __init__(
        self, app: ASGIApp, *, read_timeout: float, write_timeout: float, exempt: set[str]
    ) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            limit = asyncio.timeout_at(deadline)
            try:
                async with limit:
                    message = await receive()
            except TimeoutError:
                if not limit.expired():  # not this deadline's
                    raise
                raise RequestTimeout(self.read_timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        writes = asyncio.timeout(None)  # entered around the app below
        write_timeout = self.write_timeout

        async def send_within(message: Message) -> None:
            writes.reschedule(loop.time() + write_timeout)
            try:
                await send(message)
            finally:
                if not writes.expired():  # once expired, it can no longer be changed
                    writes.reschedule(None)

        async def timed_send(message: Message) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= _CHUNK:
                await send_within(message)
                return
            # uvicorn hands one body message to the socket buffer whole; in slices its flow
            # control makes each send wait for the client, so the deadline can apply.
            more = message.get("more_body", False)
            view = memoryview(body)
            for start in range(0, len(body), _CHUNK):
                last = start + _CHUNK >= len(body)
                await send_within(
                    {
                        "type": "http.response.body",
                        "body": bytes(view[start : start + _CHUNK]),
                        "more_body": more if last else True,
                    }
                )

        try:
            async with writes:
                await self.app(scope, timed_receive, timed_send)
        except TimeoutError:
            if not writes.expired():  # the app's own, not the write deadline's
                raise
            log.warning(
                "client %s did not read the answer to %s %s within %gs (server.write_timeout); "
                "connection dropped",
                scope.get("client"),
                scope.get("method"),
                scope.get("path"),
                write_timeout,
            )
