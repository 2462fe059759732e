"""``/api/v1/auth/token``: trade the static server token for a JWT."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from lightd_coordinator.activity.context import note_caller
from lightd_coordinator.api.deps import BearerDep, CoordinatorDep, bearer_token
from lightd_coordinator.security import COORDINATOR_AUDIENCE, mint_token
from lightd_shared.auth import TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse)
async def issue_token(
    request: Request, coordinator: CoordinatorDep, credentials: BearerDep
) -> TokenResponse:
    """Called with ``server.auth_token`` as bearer; answers a JWT valid for ``auth.token_expiry``.

    Only the static token can mint: a JWT cannot renew itself forever.
    """
    token = bearer_token(request, credentials)
    if token is None or not coordinator.verifier.is_static(token):
        raise HTTPException(
            status_code=401,
            detail="unauthorized: call this with the server token (server.auth_token) as bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    note_caller("static-token")  # the activity log records who minted (never the token)
    seconds = int(coordinator.settings.auth.token_expiry.total_seconds())
    jwt = mint_token(
        coordinator.settings.auth.jwt_secret,
        subject="api-client",
        audience=COORDINATOR_AUDIENCE,
        expires_in=seconds,
    )
    return TokenResponse(access_token=jwt, token_type="bearer", expires_in=seconds)
