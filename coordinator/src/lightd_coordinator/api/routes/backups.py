"""``/api/v1/nodes/{id}/containers/{server}/backups``: REST sugar over the ``backup.*`` commands.

Each route builds the typed container command (``backup.create``, ``backup.list``,
``backup.get``, ``backup.restore``, ``backup.delete``) an operator could send to
``POST /api/v1/nodes/{id}/commands`` and answers its
:class:`~lightd_shared.commands.CommandResult`, the agent's answer typed in ``data``::

    POST   /backups                        {"ignore": [...]} optional   backup.create
    GET    /backups                                                     backup.list
    GET    /backups/{backup}                                            backup.get
    POST   /backups/{backup}/restore                                    backup.restore
    DELETE /backups/{backup}                                            backup.delete
    GET    /backups/{backup}/download      the archive, relayed from the agent (streamed)

The download is no command (a command answers JSON): the coordinator opens the agent's
:data:`~lightd_shared.backups.BACKUP_DOWNLOAD_PATH` with a JWT signed with that node's dispatch
key that opens only this one download (``sub`` ``coordinator/backups``, 60 s), and streams the
archive through chunk by chunk, never holding it whole.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.api.routes.containers import NodeId, ServerId, _run
from lightd_coordinator.security import mint_token
from lightd_shared.backups import (
    BACKUP_DOWNLOAD_PATH,
    BACKUP_DOWNLOAD_PREFIX,
    BACKUP_DOWNLOAD_SUBJECT,
    BackupParams,
    BackupRequest,
    CreateBackupParams,
)
from lightd_shared.commands import BackupCommand, CommandResult, CreateBackupCommand
from lightd_shared.routing import GuardFirstRoute

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers/{server}/backups",
    tags=["backups"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)

BackupIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The backup's id")
]


@router.post("", response_model=CommandResult, summary="Back a server's volume up")
async def create_backup(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    body: BackupRequest | None = None,
) -> CommandResult:
    params = CreateBackupParams(server=server, ignore=body.ignore if body is not None else [])
    command = CreateBackupCommand(type="container", action="backup.create", params=params)
    return await _run(coordinator, node_id, command)


@router.get("", response_model=CommandResult, summary="A server's backups")
async def list_backups(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep
) -> CommandResult:
    params = CreateBackupParams(server=server)
    command = CreateBackupCommand(type="container", action="backup.list", params=params)
    return await _run(coordinator, node_id, command)


@router.get("/{backup}", response_model=CommandResult, summary="One backup's metadata")
async def get_backup(
    node_id: NodeId, server: ServerId, backup: BackupIdPath, coordinator: CoordinatorDep
) -> CommandResult:
    params = BackupParams(server=server, backup=backup)
    command = BackupCommand(type="container", action="backup.get", params=params)
    return await _run(coordinator, node_id, command)


@router.post("/{backup}/restore", response_model=CommandResult, summary="Restore from a backup")
async def restore_backup(
    node_id: NodeId, server: ServerId, backup: BackupIdPath, coordinator: CoordinatorDep
) -> CommandResult:
    params = BackupParams(server=server, backup=backup)
    command = BackupCommand(type="container", action="backup.restore", params=params)
    return await _run(coordinator, node_id, command)


@router.delete("/{backup}", response_model=CommandResult, summary="Delete a backup")
async def delete_backup(
    node_id: NodeId, server: ServerId, backup: BackupIdPath, coordinator: CoordinatorDep
) -> CommandResult:
    params = BackupParams(server=server, backup=backup)
    command = BackupCommand(type="container", action="backup.delete", params=params)
    return await _run(coordinator, node_id, command)


@router.get(
    "/{backup}/download",
    summary="A backup's archive (tar.gz), streamed from the agent",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/gzip": {}}},
        404: {"description": "unknown node, server or backup"},
        409: {"description": "the node cannot serve it now (unreachable, busy, not completed)"},
    },
)
async def download_backup(
    node_id: NodeId, server: ServerId, backup: BackupIdPath, coordinator: CoordinatorDep
) -> StreamingResponse:
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    key = await coordinator.fleet.dispatch_key(node_id)
    if not key:
        raise HTTPException(
            status_code=409,
            detail=f"node {node_id} registered without a dispatch key; only lightd agents "
            "serve backups",
        )
    token = mint_token(
        key,
        subject=BACKUP_DOWNLOAD_SUBJECT,
        audience=node.id,
        expires_in=60.0,
        token_id=f"{BACKUP_DOWNLOAD_PREFIX}{server}/{backup}:{uuid.uuid4().hex}",
    )
    path = BACKUP_DOWNLOAD_PATH.format(server=server, backup=backup)
    request = coordinator.client.build_request(
        "GET",
        coordinator.settings.server.tls.agent_url(node, path),
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(10.0, read=120.0),
    )
    try:
        response = await coordinator.client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise HTTPException(  # the download can be retried once the node answers again
            status_code=409,
            detail=f"node {node.id} unreachable at {node.address}:{node.port}: "
            f"{type(exc).__name__}; retry when it is back",
        ) from None
    if response.status_code != 200:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > 2000:
                break
        await response.aclose()
        detail = body.decode("utf-8", "replace")[:500]
        try:
            detail = str(json.loads(detail).get("detail", detail))
        except (ValueError, AttributeError):
            pass
        status = 404 if response.status_code == 404 else 409
        raise HTTPException(
            status_code=status, detail=f"node {node.id} refused the download: {detail}"
        )
    headers = {
        name: response.headers[name]
        for name in ("content-length", "content-disposition")
        if name in response.headers
    }
    return StreamingResponse(
        response.aiter_raw(),
        media_type="application/gzip",
        headers=headers,
        background=BackgroundTask(response.aclose),
    )
