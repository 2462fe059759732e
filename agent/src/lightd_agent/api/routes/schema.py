"""``GET /openapi.json`` behind the API token.

Every route but ``/health`` needs the token, the API's own description included: with
``authorization.enabled`` the agent serves no ``/docs`` or ``/redoc`` pages (a browser cannot
send the header) and answers ``/openapi.json`` only with ``Authorization: Bearer <token>``.
Point a local Swagger UI or ``curl`` at it. Without authorization FastAPI's usual pages are on.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lightd_agent.api.deps import Authorized

router = APIRouter(dependencies=[Authorized], include_in_schema=False)


@router.get("/openapi.json")
async def openapi_schema(request: Request) -> JSONResponse:
    """The agent's OpenAPI document."""
    return JSONResponse(request.app.openapi())
