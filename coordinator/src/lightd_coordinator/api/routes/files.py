"""``/api/v1/nodes/{id}/containers/{server}/files``: a server's files, through the coordinator.

Two ways, by size:

- **commands** (REST sugar over ``files.*`` container commands, each answering its
  :class:`~lightd_shared.commands.CommandResult` with the agent's answer typed in ``data``)::

      GET  .../files?path=/dir                       files.list
      GET  .../files/detailed?path=&offset=&limit=   files.detailed
      GET  .../files/search?pattern=&path=&limit=    files.search
      GET  .../files/content?path=&encoding=         files.read (whole, bounded by the agent)
      POST .../files/write          {"filename", "content"}             files.write
      POST .../files/create-folder  {"root", "name"}                    files.mkdir
      POST .../files/copy           {"source", "destination", "is_folder"}  files.copy
      POST .../files/rename         {"from", "to"}                      files.rename
      POST .../files/delete         {"root", "files"}                   files.delete
      POST .../files/chmod          {"path", "mode"}                    files.chmod
      POST .../files/compress       {"sources", "output", "format"}     files.compress
      POST .../files/decompress     {"root", "file"}                    files.decompress

- **streams**, for large or binary files, relayed chunk by chunk (never held whole here, never
  put on the event stream): ``GET .../files/download?path=`` and ``PUT .../files/upload?path=``
  (raw body). The coordinator opens the agent's ``/volumes/{server}/read`` or ``/upload`` with a
  JWT signed with the node's dispatch key whose ``sub`` is
  :data:`~lightd_shared.files.FILES_TRANSFER_SUBJECT` and whose ``jti`` names the server, so it
  needs no agent API token and the token opens nothing else. The upload's size is bounded by
  the agent's ``files.max_upload`` (this route is exempt from ``server.max_body_size``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.core import Coordinator
from lightd_coordinator.security import mint_token
from lightd_shared.commands import COMMAND, CommandResult, describe_command_errors
from lightd_shared.files import (
    FILES_TRANSFER_PREFIX,
    FILES_TRANSFER_SUBJECT,
    MAX_NAME,
    MAX_PATH,
    ChmodRequest,
    CompressRequest,
    ContentEncoding,
    CopyRequest,
    CreateFolderRequest,
    DecompressRequest,
    DeleteRequest,
    RenameRequest,
    WriteRequest,
)
from lightd_shared.nodes import NodeRecord
from lightd_shared.routing import GuardFirstRoute

__all__ = ["UPLOAD_PATH_SUFFIX", "is_upload", "router"]

UPLOAD_PATH_SUFFIX = "/files/upload"

router = APIRouter(
    prefix="/api/v1/nodes/{node_id}/containers/{server}/files",
    tags=["files"],
    dependencies=[Depends(require_auth)],
    route_class=GuardFirstRoute,
)

NodeId = Annotated[str, Path(description="The node's id")]
ServerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The server id")
]
PathQuery = Annotated[str, Query(max_length=MAX_PATH, description="From the volume root")]
NamedPath = Annotated[str, Query(min_length=1, max_length=MAX_PATH, description="A file")]
_TRANSFER_TIMEOUT = httpx.Timeout(30.0, read=300.0, write=300.0)


def is_upload(path: str) -> bool:
    """Whether ``path`` is the streamed upload's (exempt from ``server.max_body_size``)."""
    return path.startswith("/api/v1/nodes/") and path.endswith(UPLOAD_PATH_SUFFIX)


async def _node(coordinator: Coordinator, node_id: str) -> NodeRecord:
    node = await coordinator.fleet.get(node_id)
    if node is None:
        raise HTTPException(status_code=404, detail=f"node {node_id!r} is not registered")
    return node


async def _run(
    coordinator: Coordinator, node_id: str, server: str, action: str, params: dict[str, Any]
) -> CommandResult:
    node = await _node(coordinator, node_id)
    body = {"type": "container", "action": action, "params": {**params, "server": server}}
    try:
        command = COMMAND.validate_python(body)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=describe_command_errors(exc.errors())) from None
    result, _ = await coordinator.dispatcher.submit(node, command, wait=True)
    return result


# -- commands -----------------------------------------------------------------------------------
@router.get("", response_model=CommandResult, summary="The names in a directory")
async def list_files(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep, path: PathQuery = "/"
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.list", {"path": path})


@router.get("/detailed", response_model=CommandResult, summary="One page of a directory")
async def list_detailed(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    path: PathQuery = "/",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> CommandResult:
    params = {"path": path, "offset": offset, "limit": limit}
    return await _run(coordinator, node_id, server, "files.detailed", params)


@router.get("/search", response_model=CommandResult, summary="Entries matching a name")
async def search(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    pattern: Annotated[str, Query(min_length=1, max_length=MAX_NAME)],
    path: PathQuery = "/",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CommandResult:
    params = {"pattern": pattern, "path": path, "limit": limit}
    return await _run(coordinator, node_id, server, "files.search", params)


@router.get("/content", response_model=CommandResult, summary="A small file, whole")
async def content(
    node_id: NodeId,
    server: ServerId,
    coordinator: CoordinatorDep,
    path: NamedPath,
    encoding: ContentEncoding = "utf-8",
) -> CommandResult:
    params = {"path": path, "encoding": encoding}
    return await _run(coordinator, node_id, server, "files.read", params)


@router.post("/write", response_model=CommandResult, summary="Replace a text file")
async def write(
    node_id: NodeId, server: ServerId, body: WriteRequest, coordinator: CoordinatorDep
) -> CommandResult:
    params = {"path": body.filename, "content": body.content}
    return await _run(coordinator, node_id, server, "files.write", params)


@router.post("/create-folder", response_model=CommandResult, summary="Create a folder")
async def create_folder(
    node_id: NodeId, server: ServerId, body: CreateFolderRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.mkdir", body.model_dump())


@router.post("/copy", response_model=CommandResult, summary="Copy a file or folder")
async def copy(
    node_id: NodeId, server: ServerId, body: CopyRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.copy", body.model_dump())


@router.post("/rename", response_model=CommandResult, summary="Rename or move")
async def rename(
    node_id: NodeId, server: ServerId, body: RenameRequest, coordinator: CoordinatorDep
) -> CommandResult:
    params = body.model_dump(by_alias=True)
    return await _run(coordinator, node_id, server, "files.rename", params)


@router.post("/delete", response_model=CommandResult, summary="Delete files and folders")
async def delete(
    node_id: NodeId, server: ServerId, body: DeleteRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.delete", body.model_dump())


@router.post("/chmod", response_model=CommandResult, summary="Change permission bits")
async def chmod(
    node_id: NodeId, server: ServerId, body: ChmodRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.chmod", body.model_dump())


@router.post("/compress", response_model=CommandResult, summary="Make a tar.gz or zip")
async def compress(
    node_id: NodeId, server: ServerId, body: CompressRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.compress", body.model_dump())


@router.post("/decompress", response_model=CommandResult, summary="Extract an archive")
async def decompress(
    node_id: NodeId, server: ServerId, body: DecompressRequest, coordinator: CoordinatorDep
) -> CommandResult:
    return await _run(coordinator, node_id, server, "files.decompress", body.model_dump())


# -- streams ------------------------------------------------------------------------------------


async def _transfer_target(
    coordinator: Coordinator, node_id: str, server: str, route: str
) -> tuple[str, dict[str, str]]:
    node = await _node(coordinator, node_id)
    key = await coordinator.fleet.dispatch_key(node_id)
    if not key:
        raise HTTPException(
            status_code=409,
            detail=f"node {node_id} registered without a dispatch key; it cannot relay files",
        )
    token = mint_token(
        key,
        subject=FILES_TRANSFER_SUBJECT,
        audience=node.id,
        expires_in=60,
        token_id=f"{FILES_TRANSFER_PREFIX}{server}:{uuid.uuid4().hex}",
    )
    url = coordinator.settings.server.tls.agent_url(node, f"/volumes/{server}/{route}")
    return url, {"Authorization": f"Bearer {token}"}


def _unreachable(node_id: str, exc: httpx.HTTPError) -> HTTPException:
    return HTTPException(
        status_code=502, detail=f"node {node_id} unreachable: {type(exc).__name__}"
    )


def _relayed_error(response: httpx.Response, body: bytes) -> Response:
    """The agent's own 4xx (its ``detail``), passed on as it was; a 5xx becomes a 502."""
    status = response.status_code if response.status_code < 500 else 502
    try:
        detail = httpx.Response(200, content=body).json().get("detail", "")
    except ValueError:
        detail = body[:500].decode("utf-8", "replace")
    message = f"the agent refused: {detail}"
    if status == 422:  # the coordinator's 422 shape: the field at fault, which is the path
        errors = [{"loc": ["query", "path"], "msg": message, "type": "value_error"}]
        return JSONResponse({"detail": errors}, status_code=422)
    return JSONResponse({"detail": message}, status_code=status)


@router.get(
    "/download",
    summary="A file's bytes, relayed as a stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download(
    node_id: NodeId, server: ServerId, coordinator: CoordinatorDep, path: NamedPath
) -> Response:
    url, headers = await _transfer_target(coordinator, node_id, server, "read")
    request = coordinator.client.build_request(
        "GET", url, params={"path": path}, headers=headers, timeout=_TRANSFER_TIMEOUT
    )
    try:
        response = await coordinator.client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _unreachable(node_id, exc) from None
    if response.status_code != 200:
        body = await response.aread()
        await response.aclose()
        return _relayed_error(response, body)
    passed = {
        name: response.headers[name]
        for name in ("content-length", "content-disposition")
        if name in response.headers
    }
    return StreamingResponse(
        response.aiter_raw(),
        media_type="application/octet-stream",
        headers=passed,
        background=BackgroundTask(response.aclose),
    )


@router.put("/upload", summary="The raw body becomes the file, relayed as a stream")
async def upload(
    node_id: NodeId,
    server: ServerId,
    request: Request,
    coordinator: CoordinatorDep,
    path: NamedPath,
) -> Response:
    url, headers = await _transfer_target(coordinator, node_id, server, "upload")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        headers["Content-Length"] = length

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    try:
        response = await coordinator.client.put(
            url, params={"path": path}, headers=headers, content=body(), timeout=_TRANSFER_TIMEOUT
        )
    except (httpx.WriteError, httpx.RemoteProtocolError) as exc:
        # the agent answers a refusal (an upload over its files.max_upload) at once and closes
        # the connection while the body is still coming
        raise HTTPException(
            status_code=502,
            detail=f"node {node_id} closed the upload before it ended ({type(exc).__name__}); "
            "it refuses uploads over its files.max_upload, nothing was written",
        ) from None
    except httpx.HTTPError as exc:
        raise _unreachable(node_id, exc) from None
    if response.status_code != 200:
        return _relayed_error(response, response.content)
    return JSONResponse(response.json())
