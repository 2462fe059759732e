"""The heartbeat's fast path: ``POST /api/v1/nodes/{id}/heartbeat`` without FastAPI's machinery.

Heartbeats are nearly all of a coordinator's requests, and most of one's cost was FastAPI's
routing (matching some forty routes) and dependency solving, not the heartbeat itself. This ASGI
middleware answers the ordinary case, a well-formed heartbeat that passes auth, directly:
the same token check, node proof, body model and fleet call as the route in
``api/routes/nodes.py``, and the same answer, headers included (the ``X-Request-ID`` the
activity log's middleware gives the route's answer, since this sits outside it).

Anything else (no or bad token, a refused proof, a body that does not validate, an unknown
node, an unreachable registry) is handed to the app unchanged, with the body replayed, before
anything was changed: the route then answers it exactly as without this middleware. So the
route stays the one definition of the endpoint, and its errors are its own.

The token is checked on the headers before a byte of the body is read, as the routes do
(:class:`~lightd_shared.routing.GuardFirstRoute`): a caller without a valid token is handed on
with the body unread. :class:`FastPath` (match, caller, body, then answer or hand on) and the
helpers below (the caller, the body read and replayed, the body's content type as FastAPI reads
it) are shared with the registration's and the dispatch's fast paths
(:mod:`~lightd_coordinator.api.registration_fastpath`,
:mod:`~lightd_coordinator.api.dispatch_fastpath`).
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass, field

from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightd_coordinator.activity.context import REQUEST_ID_HEADER
from lightd_coordinator.activity.middleware import request_note
from lightd_coordinator.core import Coordinator
from lightd_coordinator.fleet import NodeClaimed
from lightd_coordinator.security import InvalidToken, Principal
from lightd_shared.dispatch import NEXT_HEARTBEAT_HEADER, NODE_PROOF_HEADER
from lightd_shared.nodes import Heartbeat

__all__ = [
    "Body",
    "FastPath",
    "HeartbeatFastPath",
    "NodeFastPath",
    "caller",
    "is_json",
    "node_route",
    "read_body",
    "replay",
]

_MAX_BODY = 1024 * 1024
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
"""Larger bodies go the ordinary way (and meet its limits)."""
_ANONYMOUS = Principal(subject="anonymous", kind="anonymous")


class FastPath:
    """What every fast path does around its own answer: take only ``POST`` requests its
    :meth:`match` claims, check the caller on the headers, read the body, then answer
    (:meth:`answer`) or hand the request on, body replayed, to the app."""

    def __init__(self, app: ASGIApp, *, coordinator: Coordinator) -> None:
        self.app = app
        self.coordinator = coordinator
        self.answered = 0
        """Requests this middleware answered itself (the rest went to the route)."""

    def match(self, path: str) -> str | None:
        """What :meth:`answer` needs from the path (``""`` if nothing); ``None``: not this one's."""
        raise NotImplementedError

    async def answer(
        self,
        scope: Scope,
        matched: str,
        headers: Headers,
        principal: Principal,
        body: bytes,
        send: Send,
    ) -> bool:
        """Answer the ordinary case; ``False`` (nothing changed) hands it to the route."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = None
        if scope["type"] == "http" and scope["method"] == "POST":
            matched = self.match(scope["path"])
        if matched is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        principal = caller(self.coordinator, headers)  # before a byte of the body is read
        if principal is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body.content is None or not await self.answer(
            scope, matched, headers, principal, body.content, send
        ):
            await self.app(scope, replay(body, receive), send)


def node_route(suffix: str) -> re.Pattern[str]:
    """``/api/v1/nodes/{node_id}/<suffix>``, the node id (in the shape ids have) captured."""
    return re.compile(rf"^/api/v1/nodes/([A-Za-z0-9][A-Za-z0-9_.-]{{0,127}})/{suffix}$")


class NodeFastPath(FastPath):
    """A fast path for a route of one node: :meth:`match` gives the node id of ``route``."""

    route: re.Pattern[str]

    def match(self, path: str) -> str | None:
        found = self.route.match(path)
        return None if found is None else found.group(1)


class HeartbeatFastPath(NodeFastPath):
    route = node_route("heartbeat")

    async def answer(
        self,
        scope: Scope,
        node_id: str,
        headers: Headers,
        principal: Principal,
        body: bytes,
        send: Send,
    ) -> bool:
        """Answer an ordinary heartbeat; ``False`` (nothing changed) hands it to the route."""
        coordinator = self.coordinator
        if not principal.is_operator:
            try:
                await coordinator.fleet.vouch(node_id, headers.get(NODE_PROOF_HEADER), warn=False)
            except NodeClaimed:
                return False
        beat: Heartbeat | None = None
        if body:  # FastAPI reads any non-empty body (whitespace too) as JSON
            if not is_json(headers.get("content-type")):
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
        if coordinator.activity.enabled:
            # what the activity middleware adds to the route's answer (a heartbeat is never
            # an entry, but it is a call the middleware may record)
            answer.append((_REQUEST_ID, request_note(scope).request_id.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        self.answered += 1
        await send({"type": "http.response.body", "body": content})
        return True


def caller(coordinator: Coordinator, headers: Headers) -> Principal | None:
    """Who the ``Authorization`` header says is calling, as ``api/deps.py`` decides it.

    ``None`` when the routes would refuse it (``401``) or could take it only from elsewhere
    (``?token=`` on the event stream): the caller is then handed to the app, body unread.
    """
    if not coordinator.settings.auth.enabled:
        return _ANONYMOUS
    authorization = headers.get("authorization")
    # fastapi.security.HTTPBearer's own parse, as the routes' dependency reads the header
    scheme, token = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and token) or scheme.lower() != "bearer":
        return None
    try:
        return coordinator.verifier.verify(token)
    except InvalidToken:
        return None


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body with this ``Content-Type`` as JSON.

    Its routes are strict about it: no ``Content-Type`` (or any but ``application/json`` and
    ``application/*+json``) leaves the body as bytes, which no body model accepts.
    """
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


@dataclass
class Body:
    """A request body read ahead of the app, with what it came in to replay it."""

    content: bytes | None
    """The whole body; ``None`` if it is not an ordinary one (too large, cut short, refused)."""
    messages: list[Message] = field(default_factory=list)
    error: Exception | None = None
    """What ``receive`` raised (a body over ``server.max_body_size``): raised again in replay."""


async def read_body(receive: Receive) -> Body:
    """The whole body and the messages it came in; ``content`` ``None`` if not an ordinary one."""
    body = Body(content=None)
    size = 0
    while True:
        try:
            message = await receive()
        except Exception as exc:  # the body limit, a read timeout: the app meets it in turn
            body.error = exc
            return body
        body.messages.append(message)
        if message["type"] != "http.request":
            return body
        size += len(message.get("body", b""))
        if size > _MAX_BODY:
            return body
        if not message.get("more_body", False):
            body.content = b"".join(m.get("body", b"") for m in body.messages)
            return body


def replay(body: Body, receive: Receive) -> Receive:
    """``receive`` as the app would have met it: the messages read ahead, then the rest."""
    pending = list(body.messages)
    error = body.error

    async def replayed() -> Message:
        nonlocal error
        if pending:
            return pending.pop(0)
        if error is not None:
            raised, error = error, None
            raise raised
        return await receive()

    return replayed
