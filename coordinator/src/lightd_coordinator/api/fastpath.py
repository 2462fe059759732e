"""The heartbeat's fast path: ``POST /api/v1/nodes/{id}/heartbeat`` without FastAPI's machinery.

Heartbeats are nearly all of a coordinator's requests, and most of one's cost was FastAPI's
routing (matching some forty routes) and dependency solving, not the heartbeat itself. This ASGI
middleware answers the ordinary case, a well-formed heartbeat that passes auth, directly:
the same token check, node proof, body model and fleet call as the route in
``api/routes/nodes.py``, and the same answer.

Anything else (no or bad token, a refused proof, a body that does not validate, an unknown
node, an unreachable registry) is handed to the app unchanged, with the body replayed, before
anything was changed: the route then answers it exactly as without this middleware. So the
route stays the one definition of the endpoint, and its errors are its own.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightd_coordinator.core import Coordinator
from lightd_coordinator.fleet import NodeClaimed
from lightd_coordinator.security import InvalidToken
from lightd_shared.dispatch import NEXT_HEARTBEAT_HEADER, NODE_PROOF_HEADER
from lightd_shared.nodes import Heartbeat

__all__ = ["HeartbeatFastPath"]

_PATH = re.compile(r"^/api/v1/nodes/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})/heartbeat$")
_MAX_BODY = 1024 * 1024
"""Larger bodies go the ordinary way (and meet its limits)."""


class HeartbeatFastPath:
    def __init__(self, app: ASGIApp, *, coordinator: Coordinator) -> None:
        self.app = app
        self.coordinator = coordinator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        body, messages = await _read(receive)
        if body is None or not await self._answer(scope, match.group(1), body, send):
            await self.app(scope, _replay(messages, receive), send)

    async def _answer(self, scope: Scope, node_id: str, body: bytes, send: Send) -> bool:
        """Answer an ordinary heartbeat; ``False`` (nothing changed) hands it to the route."""
        coordinator = self.coordinator
        headers = Headers(scope=scope)
        if coordinator.settings.auth.enabled:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return False
            try:
                principal = coordinator.verifier.verify(token)
            except InvalidToken:
                return False
            if not principal.is_operator:
                try:
                    await coordinator.fleet.vouch(node_id, headers.get(NODE_PROOF_HEADER))
                except NodeClaimed:
                    return False
        beat: Heartbeat | None = None
        if body.strip():
            if "json" not in headers.get("content-type", "application/json"):
                return False
            try:
                beat = Heartbeat.model_validate_json(body)
            except ValidationError:
                return False
        try:
            view = await coordinator.fleet.heartbeat(node_id, beat)
        except Exception:  # the route meets it again and answers it (503, ...)
            return False
        if view is None:
            return False
        content = view.model_dump_json().encode()
        answer = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        wait = coordinator.next_heartbeat
        if wait is not None:
            answer.append((NEXT_HEARTBEAT_HEADER.lower().encode(), f"{wait:.3f}".encode()))
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": content})
        return True


async def _read(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole body and the messages it came in; ``None`` if it is not an ordinary one."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        size += len(message.get("body", b""))
        if size > _MAX_BODY:
            return None, messages
        if not message.get("more_body", False):
            return b"".join(m.get("body", b"") for m in messages), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
