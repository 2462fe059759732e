"""``/api/v1/services``: what every node last reported it runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_shared.services import ServiceListing

router = APIRouter(
    prefix="/api/v1/services", tags=["services"], dependencies=[Depends(require_auth)]
)


@router.get("", response_model=ServiceListing)
async def list_services(coordinator: CoordinatorDep) -> ServiceListing:
    """Services per node id (from heartbeats), and how many nodes are registered."""
    return await coordinator.fleet.services()
