"""``GET /health``: the one route without auth, answered even when Docker is down."""

from __future__ import annotations

from fastapi import APIRouter

from lightd_agent.api.deps import AgentDep
from lightd_agent.health import build_health
from lightd_shared.containers import AgentHealth

router = APIRouter(tags=["health"])


@router.get("/health", response_model=AgentHealth, summary="Agent health (no auth)")
def health(agent: AgentDep) -> AgentHealth:
    return build_health(agent)
