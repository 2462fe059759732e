"""The resource history: agents push their servers' stats samples, operators read them back.

    POST /api/v1/nodes/{id}/stats                                 an agent's report (202)
    GET  /api/v1/nodes/{id}/containers/{server}/stats/history     oldest first, ?since= pages

The bounds (how much a node may add) are :class:`~lightd_coordinator.history.HistoryKeeper`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from lightd_coordinator.api.deps import (
    AgentAuthDep,
    CoordinatorDep,
    NodeProofDep,
    require_auth,
    vouch_for,
)
from lightd_shared.routing import GuardFirstRoute
from lightd_shared.stats import StatsHistory, StatsReport, StatsReportAnswer
from lightd_shared.timestamps import parse_timestamp

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/nodes/{node_id}", tags=["history"], route_class=GuardFirstRoute)

NodeId = Annotated[str, Path(description="The node's id")]
ServerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The server id")
]
MAX_PAGE = 5000


def _not_found(node_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")


@router.post(
    "/stats",
    response_model=StatsReportAnswer,
    status_code=status.HTTP_202_ACCEPTED,
    summary="An agent reports its servers' stats samples",
)
async def report_stats(
    node_id: NodeId,
    report: StatsReport,
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    proof: NodeProofDep = None,
) -> StatsReportAnswer:
    """Kept within the history's bounds; ``dropped`` counts what the bounds refused."""
    await vouch_for(coordinator, principal, node_id, proof)
    if await coordinator.fleet.get(node_id) is None:
        raise _not_found(node_id)
    return await coordinator.history.report(node_id, report.samples)


def _since(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["query", "since"], "msg": str(exc), "type": "value_error"}],
        ) from None


@router.get(
    "/containers/{server}/stats/history",
    response_model=StatsHistory,
    dependencies=[Depends(require_auth)],
    summary="A server's stats samples, oldest first",
)
async def stats_history(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    since: Annotated[
        str | None, Query(description="RFC 3339: only samples after it (the last one you got)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> StatsHistory:
    after = _since(since)
    if await coordinator.fleet.get(node_id) is None:
        raise _not_found(node_id)
    samples = await coordinator.history.read(node_id, server, since=after, limit=limit)
    return StatsHistory(node_id=node_id, server=server, samples=samples)
