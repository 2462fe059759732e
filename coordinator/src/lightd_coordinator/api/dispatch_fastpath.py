"""Dispatch's fast path: ``POST /api/v1/nodes/{node_id}/commands`` without FastAPI's machinery.

Figure 5 (what a command through the coordinator adds over one sent straight to the agent)
was mostly FastAPI's own cost per request (dependency solving, the route's guard, matching,
the response model) on top of the second hop. This ASGI middleware answers an ordinary
dispatch itself, the way the route in ``api/routes/nodes.py`` would: the same operator check
(on the headers, before the body is read), the body parsed and validated as FastAPI does it
(:func:`json.loads`, then the :data:`~lightd_shared.commands.Command` union), the same
:meth:`Fleet.get_for_dispatch <lightd_coordinator.fleet.Fleet.get_for_dispatch>` and
:meth:`Dispatcher.submit <lightd_coordinator.dispatch.Dispatcher.submit>` calls, the same
``200`` with the result's bytes. It also does what the activity log's middleware, which it
sits outside of, does for the route: the request's note in
:data:`~lightd_coordinator.activity.context.current_note` while the command is submitted (the
command's own entry names the request), the ``X-Request-ID`` answer header and the
``command.dispatch`` entry, stored before the answer's last byte. The command's final result
is stored and published right after the answer is sent (``submit(answered=...)``), not on the
answer's path; a reader through the dispatcher (``GET .../commands/{id}``, the activity log)
still waits for it.

It takes only the plain case: no query string (``?async`` and anything else go the route's
way), no ``Idempotency-Key`` (a repeat cannot be told from a first use without claiming the
key, which changes the store), an operator caller, a JSON body that validates, an ``active``
node. Anything else (no or bad token, the agent token, a body that is not JSON or does not
validate, an unknown or inactive node, a registry that fails) is handed to the app unchanged,
with the body replayed, before anything was changed: the route then answers it exactly as
without this middleware. Once the command is submitted the answer is this middleware's,
whatever happens (handing it on would send the command twice): a registry that fails meanwhile
is answered as the app's handler answers it (``503``), anything else raised as the route would
raise it (the app's ``500``), each with the activity entry the activity log's middleware would
have stored.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.datastructures import Headers
from starlette.types import Scope, Send

from lightd_coordinator.activity.actions import action_of
from lightd_coordinator.activity.context import REQUEST_ID_HEADER, Note, current_note
from lightd_coordinator.activity.middleware import request_note
from lightd_coordinator.api.errors import registry_unavailable
from lightd_coordinator.api.fastpath import NodeFastPath, is_json, node_route
from lightd_coordinator.registry import RegistryUnavailable
from lightd_coordinator.security import Principal
from lightd_shared.commands import COMMAND
from lightd_shared.dispatch import IDEMPOTENCY_HEADER

__all__ = ["DispatchFastPath"]

log = logging.getLogger(__name__)

_ROUTE = "/api/v1/nodes/{node_id}/commands"
"""The route's template (what the activity log records)."""
_ACTION = action_of("POST", _ROUTE)
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_IDEMPOTENCY = IDEMPOTENCY_HEADER.lower()


class DispatchFastPath(NodeFastPath):
    route = node_route("commands")

    async def answer(
        self,
        scope: Scope,
        node_id: str,
        headers: Headers,
        principal: Principal,
        body: bytes,
        send: Send,
    ) -> bool:
        """Answer an ordinary dispatch; ``False`` (nothing changed) hands it to the route."""
        if (
            not principal.is_operator  # the route's 403
            or scope.get("query_string")  # ?async=..., or anything the route may refuse
            or _IDEMPOTENCY in headers
            or not body
            or not is_json(headers.get("content-type"))
        ):
            return False
        try:
            # as FastAPI reads it: Starlette's Request.json(), then the body field's validation
            command = COMMAND.validate_python(json.loads(body), from_attributes=True)
        except Exception:  # not JSON, too deep, not a command: the route's 400 or 422
            return False
        coordinator = self.coordinator
        try:
            found = await coordinator.fleet.get_for_dispatch(node_id)
        except Exception:  # the registry: the route's 503
            return False
        if found is None or found[0].status != "active":  # 404; an inactive node: the route's
            return False
        node, key = found
        note = None
        if coordinator.activity.enabled:
            note = request_note(scope)
            note.subject = principal.subject
        token = current_note.set(note)  # the command's task and its entry read it
        # the node's final answer is stored and published once ours is sent (see submit)
        answered = asyncio.Event()
        try:
            try:
                # From here the command may be on its way: the answer is ours, whatever happens.
                result, _ = await coordinator.dispatcher.submit(
                    node, command, dispatch_key=key, answered=answered
                )
                # what the route's response model makes of it (FastAPI: TypeAdapter.dump_json)
                content = result.model_dump_json(by_alias=True).encode()
            except RegistryUnavailable as exc:  # the app's handler's answer
                log.warning("POST %s answered 503: %s", scope["path"], exc)
                refused = registry_unavailable(exc)
                await self._respond(
                    send, note, node_id, 503, refused.raw_headers, bytes(refused.body)
                )
                return True
            except Exception:  # the app's 500, as the route's exception would be answered
                await self._record(note, node_id, 500)  # as the activity middleware would
                raise
            finally:
                current_note.reset(token)
            answer = [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", b"application/json"),
            ]
            await self._respond(send, note, node_id, 200, answer, content)
            return True
        finally:
            answered.set()  # also when sending failed: the result is stored either way

    async def _respond(
        self,
        send: Send,
        note: Note | None,
        node_id: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
    ) -> None:
        """Send the answer, with what the activity middleware adds to it: the ``X-Request-ID``
        header, and the entry, stored before the answer's last byte."""
        if note is not None:
            headers = [*headers, (_REQUEST_ID, note.request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await self._record(note, node_id, status)
        self.answered += 1
        await send({"type": "http.response.body", "body": content})

    async def _record(self, note: Note | None, node_id: str, status: int) -> None:
        if note is not None and _ACTION is not None:
            await self.coordinator.activity.request(
                note,
                method="POST",
                route=_ROUTE,
                action=_ACTION,
                status=status,
                params={"node_id": node_id},
            )
