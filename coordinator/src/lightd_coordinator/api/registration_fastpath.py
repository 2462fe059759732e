"""Registration's fast path: ``POST /api/v1/nodes`` without FastAPI's machinery.

A registration cost mostly what every FastAPI request costs (routing, dependency solving, the
response model), as the heartbeat did before :mod:`~lightd_coordinator.api.fastpath`. This ASGI
middleware answers an ordinary registration itself, the way the route in
``api/routes/nodes.py`` would: the same caller check (on the headers, before the body is read),
the same :class:`~lightd_shared.nodes.NodeRegistration` body, the same
:meth:`Fleet.register <lightd_coordinator.fleet.Fleet.register>` call with the node proof,
the same ``201`` (new node) or ``200`` (known id), headers and body bytes. It also does what the
activity log's middleware, which it sits outside of, does for the route: the ``X-Request-ID``
answer header and the ``node.register`` entry, stored before the answer's last byte.

Anything else (no or bad token, a body that is not JSON or does not validate, a claimed node
(``409``), a registry that fails) is handed to the app unchanged, with the body replayed,
before anything was changed: the route then answers it exactly as without this middleware.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import Scope, Send

from lightd_coordinator.activity.actions import action_of
from lightd_coordinator.activity.context import REQUEST_ID_HEADER
from lightd_coordinator.activity.middleware import request_note
from lightd_coordinator.api.fastpath import FastPath, is_json
from lightd_coordinator.security import Principal
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.nodes import NodeRegistration

__all__ = ["RegistrationFastPath"]

_PATH = "/api/v1/nodes"
"""The route's path, which is also its template (what the activity log records)."""
_ACTION = action_of("POST", _PATH)
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


class RegistrationFastPath(FastPath):
    def match(self, path: str) -> str | None:
        return "" if path == _PATH else None

    async def answer(
        self,
        scope: Scope,
        matched: str,
        headers: Headers,
        principal: Principal,
        body: bytes,
        send: Send,
    ) -> bool:
        """Answer an ordinary registration; ``False`` (nothing changed) hands it to the route."""
        if not body or not is_json(headers.get("content-type")):
            return False
        try:
            registration = NodeRegistration.model_validate_json(body)
        except ValidationError:
            return False
        coordinator = self.coordinator
        try:
            record, created = await coordinator.fleet.register(
                registration,
                proof=headers.get(NODE_PROOF_HEADER),
                vouch=not principal.is_operator,
                warn=False,  # the route warns of a refused proof when it meets it again
            )
        except Exception:  # a claimed node (409), the registry: the route's answers
            return False
        status = 201 if created else 200
        # what the route's response model makes of it (FastAPI: TypeAdapter.dump_json, by alias)
        content = record.model_dump_json(by_alias=True).encode()
        answer = [
            (b"content-length", str(len(content)).encode()),
            (b"content-type", b"application/json"),
        ]
        activity = coordinator.activity
        note = None
        if activity.enabled:
            note = request_note(scope)
            note.subject = principal.subject
            note.node = registration.id
            answer.append((_REQUEST_ID, note.request_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": answer})
        if note is not None and _ACTION is not None:
            await activity.request(
                note, method="POST", route=_PATH, action=_ACTION, status=status, params={}
            )
        self.answered += 1
        await send({"type": "http.response.body", "body": content})
        return True
