"""``/volumes/{id}``: a server's disk quota (lightd's route names).

- ``GET /volumes/{id}/quota``: ``{"size_mb", "used_mb", "available_mb", "percentage_used", ...}``
  from ``statvfs`` of the mounted image; 409 for a server without ``limits.disk``.
- ``POST /volumes/{id}/resize`` ``{"size": MB}``: the new limit; 409 when the state or the data
  does not allow it (the message says which).
"""

from __future__ import annotations

from fastapi import APIRouter

from lightd_agent.api.deps import Authorized, LifecycleAllowed, ManagerDep
from lightd_shared.quota import QuotaView, ResizeRequest
from lightd_shared.routing import GuardFirstRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/volumes",
    tags=["volumes"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)


@router.get(
    "/{server_id}/quota",
    response_model=QuotaView,
    summary="The volume's disk quota: size, used, available",
)
async def quota(server_id: str, manager: ManagerDep) -> QuotaView:
    manager.get(server_id)
    return await manager.quotas.quota(server_id)


@router.post(
    "/{server_id}/resize",
    response_model=QuotaView,
    dependencies=[LifecycleAllowed],
    summary="Grow or shrink the volume's disk limit ({'size': MB})",
)
async def resize(server_id: str, body: ResizeRequest, manager: ManagerDep) -> QuotaView:
    """Grows a running server's disk where the host allows it online (else stop it first);
    shrinks only a stopped server's, and only when its data fits."""
    manager.get(server_id)
    return await manager.quotas.resize(server_id, body.size)
