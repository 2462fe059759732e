"""Dependencies of the routes, named as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lightd_coordinator.activity.context import note_caller
from lightd_coordinator.core import Coordinator
from lightd_coordinator.fleet import NodeClaimed
from lightd_coordinator.security import InvalidToken, Principal
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.routing import guard

__all__ = [
    "DOCS_PATHS",
    "AgentAuthDep",
    "AuthDep",
    "CoordinatorDep",
    "NodeProofDep",
    "require_agent",
    "require_auth",
    "vouch_for",
]

_bearer = HTTPBearer(auto_error=False, description="The server token or a JWT")

DOCS_PATHS = ("/openapi.json", "/docs", "/redoc")
"""The API's documentation: behind auth, and (pages a browser opens) taking ``?token=``."""


def coordinator_of(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


async def get_coordinator(request: Request) -> Coordinator:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every request (most of a heartbeat's dependency time under load)
    return coordinator_of(request)


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=f"unauthorized: {reason}; send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def bearer_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token from the header; on the event stream and the docs also ``?token=``.

    Browsers cannot send a header with ``EventSource`` or a page load; elsewhere a token in
    the URL is refused (it would end up in histories and proxies' logs).
    """
    if credentials is not None:
        return credentials.credentials
    if request.headers.get("authorization"):
        raise _unauthorized("the Authorization header must use the Bearer scheme")
    coordinator = coordinator_of(request)
    path = request.url.path
    if path == coordinator.settings.websocket.path or path in DOCS_PATHS:
        return request.query_params.get("token") or None
    return None


def _principal(
    request: Request,
    coordinator: Coordinator,
    credentials: HTTPAuthorizationCredentials | None,
) -> Principal:
    if not coordinator.settings.auth.enabled:
        principal = Principal(subject="anonymous", kind="anonymous")
    else:
        token = bearer_token(request, credentials)
        try:
            principal = coordinator.verifier.verify(token)
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from None
    note_caller(principal.subject)  # the activity log's entry names the caller
    return principal


@guard
async def require_auth(
    request: Request,
    coordinator: CoordinatorDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Every endpoint but ``/health`` needs a token when ``auth.enabled`` is true.

    The operator API takes the server token or an API JWT; the agent token is refused here.
    """
    principal = _principal(request, coordinator, credentials)
    if not principal.is_operator:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the agent token opens only the routes agents call (registration, "
            "heartbeat, result reports, /api/v1/remote); use the server token or an API JWT",
        )
    return principal


@guard
async def require_agent(
    request: Request,
    coordinator: CoordinatorDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Routes agents call: ``auth.agent_token``, or anything that opens the operator API."""
    return _principal(request, coordinator, credentials)


AuthDep = Annotated[Principal, Depends(require_auth)]
AgentAuthDep = Annotated[Principal, Depends(require_agent)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


NodeProofDep = Annotated[
    str | None,
    Header(
        alias=NODE_PROOF_HEADER,
        description="An agent's proof that it holds the node's dispatch key (a JWT signed with "
        "it); needed with the agent token once the node is enrolled",
    ),
]


async def vouch_for(
    coordinator: Coordinator,
    principal: Principal,
    node_id: str,
    proof: str | None,
) -> None:
    """Let an agent-token caller speak for ``node_id`` only with the node's proof.

    Operators (server token, API JWT, auth off) may speak for any node. A refusal is ``403``
    with what to do.
    """
    if principal.is_operator:
        return
    try:
        await coordinator.fleet.vouch(node_id, proof)
    except NodeClaimed as exc:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=str(exc),
        ) from None
