"""``/volumes/{id}/...``: a server's files (lightd's route names), by :mod:`lightd_agent.files`.

Every route needs the API token, checked before the body is read. The streamed download
(``GET .../read``) and upload (``PUT .../upload``) also take the coordinator's transfer token
(a JWT signed with this node's dispatch key, ``sub`` ``coordinator/files``, ``jti`` naming this
server), so the coordinator can relay large files without holding the API token. Errors are
4xx with ``{"detail": ...}``: 404 missing, 422 a path or entry refused, 409 exists, 413 too
large.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from lightd_agent.api.deps import AgentDep, require_token
from lightd_agent.errors import BadRequest, PayloadTooLarge
from lightd_agent.files import FileService
from lightd_agent.security import DispatchTokenError, verify_dispatch_token
from lightd_shared.files import (
    FILES_TRANSFER_PREFIX,
    FILES_TRANSFER_SUBJECT,
    MAX_NAME,
    MAX_PATH,
    ChmodRequest,
    CompressRequest,
    CopyRequest,
    CreateFolderRequest,
    DecompressRequest,
    DeleteRequest,
    FileDone,
    FileEntries,
    FileNames,
    FileSearch,
    RenameRequest,
    WriteRequest,
)
from lightd_shared.routing import GuardFirstRoute, guard
from lightd_shared.tokens import tokens_equal

__all__ = ["UPLOAD_SUFFIX", "is_upload", "router"]

UPLOAD_SUFFIX = "/upload"
"""The upload route's last path part: its body is bounded by ``files.max_upload``, not by
``server.max_body_size`` (app.py)."""


def is_upload(path: str) -> bool:
    """Whether ``path`` is a streamed upload's (``/volumes/<id>/upload``)."""
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "volumes" and parts[3] == UPLOAD_SUFFIX[1:]


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <authorization.token>")
_TRANSFERS = ("/read", UPLOAD_SUFFIX)


@guard
def files_access(
    request: Request,
    agent: AgentDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The API token; or, for a streamed transfer, the coordinator's token for this server."""
    config = agent.config
    token = credentials.credentials if credentials is not None else ""
    api_token = config.authorization.token
    transfer = (
        request.url.path.endswith(_TRANSFERS)
        and token.count(".") == 2
        and not (api_token and tokens_equal(token, api_token))
    )
    if not (transfer and config.coordinator.enabled):
        require_token(config, credentials)
        return
    server = str(request.path_params.get("server_id", ""))
    try:
        claims = verify_dispatch_token(
            f"Bearer {token}",
            agent.dispatch_key,
            node_id=config.node.id,
            command_id=None,
            subject=FILES_TRANSFER_SUBJECT,
        )
    except DispatchTokenError as exc:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"file transfer refused: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    if not claims.jti.startswith(f"{FILES_TRANSFER_PREFIX}{server}:"):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="file transfer refused: the token is for another server",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(
    prefix="/volumes",
    tags=["files"],
    dependencies=[Depends(files_access)],
    route_class=GuardFirstRoute,
)


def get_files(agent: AgentDep) -> FileService:
    return agent.files


FilesDep = Annotated[FileService, Depends(get_files)]
PathQuery = Annotated[
    str, Query(max_length=MAX_PATH, description="From the volume root ('/' is that root)")
]
NamedPath = Annotated[str, Query(min_length=1, max_length=MAX_PATH, description="A file")]
_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "no such server, file or directory"},
    409: {"description": "already exists, or changed meanwhile"},
    413: {"description": "too large (a listing, an upload, an archive)"},
    422: {"description": "a path or entry refused (.., a link, a device, a hard link)"},
}


@router.get("/{server_id}/files", response_model=FileNames, responses=_ERRORS)
async def list_names(server_id: str, files: FilesDep, path: PathQuery = "/") -> FileNames:
    """The names in one directory, sorted."""
    return await files.names(server_id, path)


@router.get("/{server_id}/files/detailed", response_model=FileEntries, responses=_ERRORS)
async def list_detailed(
    server_id: str,
    files: FilesDep,
    path: PathQuery = "/",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FileEntries:
    """One page of a directory (sorted by name): ``offset``, ``limit`` and ``next_offset``."""
    return await files.detailed(server_id, path, offset, limit)


@router.get("/{server_id}/search", response_model=FileSearch, responses=_ERRORS)
async def search(
    server_id: str,
    files: FilesDep,
    pattern: Annotated[str, Query(min_length=1, max_length=MAX_NAME)],
    path: PathQuery = "/",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FileSearch:
    """Entries below ``path`` whose name matches ``pattern`` (a glob, or a substring)."""
    return await files.search(server_id, pattern, path, limit)


@router.get(
    "/{server_id}/read",
    response_class=StreamingResponse,
    responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def read(server_id: str, files: FilesDep, path: NamedPath) -> StreamingResponse:
    """The file's bytes, streamed (``Content-Length`` is its size)."""
    download = await files.open_download(server_id, path)
    return StreamingResponse(
        download.chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(download.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(download.name)}",
        },
    )


@router.put("/{server_id}/upload", response_model=FileDone, responses=_ERRORS)
async def upload(server_id: str, request: Request, files: FilesDep, path: NamedPath) -> FileDone:
    """The raw body becomes the file at ``path``: streamed into a temporary file beside it,
    then renamed over it (at most ``files.max_upload`` bytes; parents are made)."""
    limit = files.settings.max_upload
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the upload is larger than {limit} bytes (files.max_upload)")
    target = await files.open_upload(server_id, path)
    try:
        async for chunk in request.stream():
            if chunk:
                await target.write(chunk)
        return await target.commit()
    except ClientDisconnect:
        raise BadRequest("the upload was cut off; nothing was written") from None
    finally:
        target.close()


@router.post("/{server_id}/write", response_model=FileDone, responses=_ERRORS)
async def write(server_id: str, body: WriteRequest, files: FilesDep) -> FileDone:
    """Replace (or create) a text file, atomically; parents are made."""
    return await files.write(server_id, body.filename, body.content.encode("utf-8"))


@router.post("/{server_id}/create-folder", response_model=FileDone, responses=_ERRORS)
async def create_folder(server_id: str, body: CreateFolderRequest, files: FilesDep) -> FileDone:
    return await files.mkdir(server_id, body.root, body.name)


@router.post("/{server_id}/copy", response_model=FileDone, responses=_ERRORS)
async def copy(server_id: str, body: CopyRequest, files: FilesDep) -> FileDone:
    return await files.copy(server_id, body.source, body.destination, body.is_folder)


@router.post("/{server_id}/rename", response_model=FileDone, responses=_ERRORS)
async def rename(server_id: str, body: RenameRequest, files: FilesDep) -> FileDone:
    """Rename or move (``{"from", "to"}``); the target must not exist."""
    return await files.rename(server_id, body.from_, body.to)


@router.post("/{server_id}/delete", response_model=FileDone, responses=_ERRORS)
async def delete(server_id: str, body: DeleteRequest, files: FilesDep) -> FileDone:
    """Delete ``files`` (names or paths under ``root``); folders with all they hold."""
    return await files.delete(server_id, body.root, body.files)


@router.post("/{server_id}/chmod", response_model=FileDone, responses=_ERRORS)
async def chmod(server_id: str, body: ChmodRequest, files: FilesDep) -> FileDone:
    return await files.chmod(server_id, body.path, body.mode)


@router.post("/{server_id}/compress", response_model=FileDone, responses=_ERRORS)
async def compress(server_id: str, body: CompressRequest, files: FilesDep) -> FileDone:
    return await files.compress(server_id, body.sources, body.output, body.format)


@router.post("/{server_id}/decompress", response_model=FileDone, responses=_ERRORS)
async def decompress(server_id: str, body: DecompressRequest, files: FilesDep) -> FileDone:
    return await files.decompress(server_id, body.root, body.file)
