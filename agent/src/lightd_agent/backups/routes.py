"""``/containers/{id}/backups``: backups of a server's volume, and restores from them.

Every route needs the bearer token (checked before the body is read). ``POST`` answers 202 at
once; the work's progress and outcome come on ``GET /events`` and in the backup's metadata.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, status
from fastapi.responses import StreamingResponse

from lightd_agent.api.deps import AgentDep, Authorized
from lightd_agent.backups.service import BackupService
from lightd_agent.errors import AgentError
from lightd_agent.security import DispatchTokenError, verify_dispatch_token
from lightd_shared.backups import (
    BACKUP_DOWNLOAD_PATH,
    BACKUP_DOWNLOAD_PREFIX,
    BACKUP_DOWNLOAD_SUBJECT,
    BackupAccepted,
    BackupInfo,
    BackupList,
    BackupRemoved,
    BackupRequest,
    RestoreAccepted,
)
from lightd_shared.routing import GuardFirstRoute

__all__ = ["relay_router", "router"]

router = APIRouter(
    prefix="/containers",
    tags=["backups"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)

_BACKUP_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
BackupIdPath = Annotated[str, Path(pattern=_BACKUP_ID, description="The backup's id")]


def get_backups(agent: AgentDep) -> BackupService:
    return agent.backups


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


relay_router = APIRouter(tags=["backups"])


def _relay_allowed(
    agent: AgentDep,
    server: str,
    backup: str,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Only a JWT signed with this node's dispatch key for this one download opens it."""
    config = agent.config
    if not config.coordinator.enabled:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="this agent is not enrolled with a coordinator (coordinator.enabled is false)",
        )
    try:
        claims = verify_dispatch_token(
            authorization,
            agent.dispatch_key,
            node_id=config.node.id,
            command_id=None,
            subject=BACKUP_DOWNLOAD_SUBJECT,
        )
    except DispatchTokenError as exc:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"backup download refused: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    if not claims.jti.startswith(f"{BACKUP_DOWNLOAD_PREFIX}{server}/{backup}:"):
        raise HTTPException(
            status_code=401, detail="backup download refused: the token is for another backup"
        )


@relay_router.get(
    BACKUP_DOWNLOAD_PATH,
    summary="A backup's archive, for the coordinator to relay",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}}, **_ERRORS},
    dependencies=[Depends(_relay_allowed)],
)
async def relay_download(
    server: str, backup: BackupIdPath, backups: BackupsDep
) -> StreamingResponse:
    return await download_backup(server, backup, backups)
