"""``/api/v1/commands``: stored results, node reports, and fan-out by label selector."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status

from lightd_coordinator.api.deps import (
    AgentAuthDep,
    CoordinatorDep,
    NodeProofDep,
    require_auth,
    vouch_for,
)
from lightd_coordinator.dispatch import ReportRejected
from lightd_shared.commands import CommandResult
from lightd_shared.dispatch import IDEMPOTENCY_HEADER, FanOutRequest, FanOutResults
from lightd_shared.routing import GuardFirstRoute

router = APIRouter(prefix="/api/v1/commands", tags=["commands"], route_class=GuardFirstRoute)


@router.post(
    "",
    response_model=FanOutResults,
    responses={202: {"description": "Accepted (?async=true): every result is pending"}},
    dependencies=[Depends(require_auth)],
)
async def fan_out(
    request: FanOutRequest,
    coordinator: CoordinatorDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias=IDEMPOTENCY_HEADER, min_length=1, max_length=255)
    ] = None,
    run_async: Annotated[bool, Query(alias="async")] = False,
) -> FanOutResults:
    """Run one command on every active node whose labels include ``selector``."""
    nodes = [
        record
        for record in await coordinator.fleet.all_records()
        if record.status == "active"
        and all(record.labels.get(k) == v for k, v in request.selector.items())
    ]
    outcomes = await asyncio.gather(
        *(
            coordinator.dispatcher.submit(
                node,
                request.command,
                idempotency_key=None if idempotency_key is None else f"fan-out:{idempotency_key}",
                wait=not run_async,
            )
            for node in nodes
        )
    )
    if run_async:
        response.status_code = status.HTTP_202_ACCEPTED
    results = [result for result, _ in outcomes]
    return FanOutResults(results=results, count=len(results))


@router.get("/{command_id}", response_model=CommandResult, dependencies=[Depends(require_auth)])
async def get_command(command_id: str, coordinator: CoordinatorDep) -> CommandResult:
    """A command's stored result (kept for ``registry.result_ttl``)."""
    result = await coordinator.dispatcher.get(command_id)
    if result is None:
        raise HTTPException(404, detail=f"no command {command_id!r} is known (or it has expired)")
    return result


@router.post("/{command_id}/result", response_model=CommandResult)
async def report_result(
    command_id: str,
    result: CommandResult,
    coordinator: CoordinatorDep,
    principal: AgentAuthDep,
    proof: NodeProofDep = None,
) -> CommandResult:
    """A node reports the result of a command it accepted earlier (with its node proof)."""
    await vouch_for(coordinator, principal, result.node_id, proof)
    try:
        return await coordinator.dispatcher.report(command_id, result)
    except ReportRejected as exc:
        raise HTTPException(exc.status_code, detail=str(exc)) from None
