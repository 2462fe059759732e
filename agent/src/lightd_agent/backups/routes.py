"""``/containers/{id}/backups``: backups of a server's volume, and restores from them.

Every route needs the bearer token (checked before the body is read). ``POST`` answers 202 at
once; the work's progress and outcome come on ``GET /events`` and in the backup's metadata.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import StreamingResponse

from lightd_agent.api.deps import Authorized
from lightd_agent.api.routing import GuardFirstRoute
from lightd_agent.backups.service import BackupService
from lightd_agent.errors import AgentError
from lightd_shared.backups import (
    BackupAccepted,
    BackupInfo,
    BackupList,
    BackupRemoved,
    BackupRequest,
    RestoreAccepted,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/containers",
    tags=["backups"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)

_BACKUP_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
BackupIdPath = Annotated[str, Path(pattern=_BACKUP_ID, description="The backup's id")]


def get_backups(request: Request) -> BackupService:
    service: BackupService = request.app.state.agent.backups
    return service


BackupsDep = Annotated[BackupService, Depends(get_backups)]
_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "unknown server or backup"},
    409: {"description": "busy with another backup or restore, or not completed"},
    503: {"description": "shutting down, or lifecycle actions refused"},
}


def _named(exc: AgentError, server_id: str) -> AgentError:
    exc.server = exc.server or server_id
    return exc


@router.post(
    "/{server_id}/backups",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackupAccepted,
    summary="Back the server's volume up (in the background)",
    responses=_ERRORS,
)
async def create_backup(
    server_id: str, backups: BackupsDep, body: BackupRequest | None = None
) -> BackupAccepted:
    try:
        info = await backups.create(server_id, body.ignore if body is not None else [])
    except AgentError as exc:
        raise _named(exc, server_id) from None
    return BackupAccepted(id=info.id, state=info.state)


@router.get(
    "/{server_id}/backups",
    response_model=BackupList,
    summary="The server's backups, oldest first",
    responses=_ERRORS,
)
async def list_backups(server_id: str, backups: BackupsDep) -> BackupList:
    found = backups.listing(server_id)
    return BackupList(backups=found, count=len(found))


@router.get(
    "/{server_id}/backups/{backup_id}",
    response_model=BackupInfo,
    summary="One backup's metadata (size, checksum, state, ...)",
    responses=_ERRORS,
)
async def get_backup(server_id: str, backup_id: BackupIdPath, backups: BackupsDep) -> BackupInfo:
    return backups.get(server_id, backup_id)


@router.get(
    "/{server_id}/backups/{backup_id}/download",
    summary="The backup's archive (tar.gz, streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}}, **_ERRORS},
)
async def download_backup(
    server_id: str, backup_id: BackupIdPath, backups: BackupsDep
) -> StreamingResponse:
    chunks, size = await backups.open_download(server_id, backup_id)
    return StreamingResponse(
        chunks,
        media_type="application/gzip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{server_id}-{backup_id}.tar.gz"',
        },
    )


@router.post(
    "/{server_id}/backups/{backup_id}/restore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RestoreAccepted,
    summary="Restore the volume from the backup (stops and restarts a running server)",
    responses=_ERRORS,
)
async def restore_backup(
    server_id: str, backup_id: BackupIdPath, backups: BackupsDep
) -> RestoreAccepted:
    try:
        await backups.restore(server_id, backup_id)
    except AgentError as exc:
        raise _named(exc, server_id) from None
    return RestoreAccepted(id=backup_id, server=server_id)


@router.delete(
    "/{server_id}/backups/{backup_id}",
    response_model=BackupRemoved,
    summary="Delete the backup and its archive",
    responses=_ERRORS,
)
async def delete_backup(
    server_id: str, backup_id: BackupIdPath, backups: BackupsDep
) -> BackupRemoved:
    await backups.delete(server_id, backup_id)
    return BackupRemoved(backup=backup_id, server=server_id)
