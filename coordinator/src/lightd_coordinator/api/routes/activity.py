"""``GET /api/v1/activity``: the activity log, newest first, filtered and paged.

Filters (each given must hold): ``node``, ``server``, ``user`` (the user or the token's
subject), ``action`` (exact, or a prefix ending in ``*``), ``kind`` (``request``/``command``),
``outcome`` (``success``, ``404``, ``4xx``), ``since``/``until`` (RFC 3339, or a duration ago
such as ``1h``). Paging: ``limit`` (1-1000, default 100) and ``before`` (the page's
``next_before``). A bad filter is a ``422`` naming it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import ValidationError

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.api.errors import invalid
from lightd_shared.activity import (
    MAX_ACTIVITY_ID,
    MAX_ACTIVITY_LIMIT,
    ActivityKind,
    ActivityPage,
    ActivityQuery,
)
from lightd_shared.routing import GuardFirstRoute

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/activity", tags=["activity"], route_class=GuardFirstRoute)

Text = Annotated[str | None, Query(max_length=255)]


@router.get(
    "",
    response_model=ActivityPage,
    dependencies=[Depends(require_auth)],
    summary="Who did what: the activity log, newest first",
)
async def read_activity(
    coordinator: CoordinatorDep,
    node: Text = None,
    server: Text = None,
    user: Text = None,
    action: Text = None,
    kind: Annotated[ActivityKind | None, Query()] = None,
    outcome: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="RFC 3339, or a duration ago ('1h')")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="RFC 3339, or a duration ago ('1h')")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ACTIVITY_ID, description="A page's next_before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ACTIVITY_LIMIT)] = 100,
) -> ActivityPage:
    try:
        query = ActivityQuery(
            node=node,
            server=server,
            user=user,
            action=action,
            kind=kind,
            outcome=outcome,
            since=since,  # type: ignore[arg-type]  # read by the model's validator
            until=until,  # type: ignore[arg-type]
            before=before,
            limit=limit,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(part) for part in error.get("loc", ())] or ["since"]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise invalid(["query", *where], message) from None
    await coordinator.dispatcher.settled()  # the entries of commands already answered
    return await coordinator.activity.read(query)
