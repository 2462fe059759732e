"""A server's files: the agent's ``/volumes/{id}/...`` bodies and the ``files.*`` commands.

Every path is relative to the server's volume root: a leading ``/`` means that root, never the
host's. The agent refuses ``..``, NUL and over-long paths (``422``); a path is at most
:data:`MAX_PATH` characters, a name at most :data:`MAX_NAME`.

Routes (the agent, each under its API token)::

    GET  /volumes/{id}/files?path=/dir              FileNames
    GET  /volumes/{id}/files/detailed?path=&offset=&limit=   FileEntries
    POST /volumes/{id}/write           WriteRequest          FileDone
    PUT  /volumes/{id}/upload?path=    raw body              FileDone
    GET  /volumes/{id}/read?path=      streamed bytes
    POST /volumes/{id}/create-folder   CreateFolderRequest   FileDone
    POST /volumes/{id}/copy            CopyRequest           FileDone
    POST /volumes/{id}/rename          RenameRequest         FileDone
    POST /volumes/{id}/delete          DeleteRequest         FileDone
    POST /volumes/{id}/chmod           ChmodRequest          FileDone
    POST /volumes/{id}/compress        CompressRequest       FileDone
    POST /volumes/{id}/decompress      DecompressRequest     FileDone
    GET  /volumes/{id}/search?pattern=&path=&limit=          FileSearch

Commands (``type: "container"``, one typed params model per action, :data:`FilesCommand`)::

    files.list       server, path                    -> FilesAnswer.names
    files.detailed   server, path, offset, limit     -> FilesAnswer.entries
    files.read       server, path, encoding          -> FilesAnswer.content (bounded)
    files.write      server, path, content, encoding -> FilesAnswer.done
    files.mkdir      server, root, name              -> FilesAnswer.done (and the rest)
    files.copy       server, source, destination, is_folder
    files.rename     server, from, to
    files.delete     server, root, files
    files.chmod      server, path, mode
    files.compress   server, sources, output, format
    files.decompress server, root, file
    files.search     server, pattern, path, limit    -> FilesAnswer.search

Over 400 lines: one idea, the file manager's wire (route bodies, answers and the command union
built from the same fields); it is mostly one short model per route and per command.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag

from lightd_shared.base import Payload, Request
from lightd_shared.durations import Duration
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier

__all__ = [
    "FILES_ACTIONS",
    "FILES_TRANSFER_PREFIX",
    "FILES_TRANSFER_SUBJECT",
    "MAX_BATCH",
    "MAX_CONTENT",
    "MAX_NAME",
    "MAX_PATH",
    "ArchiveFormat",
    "ChmodParams",
    "ChmodRequest",
    "CompressParams",
    "CompressRequest",
    "ContentEncoding",
    "CopyParams",
    "CopyRequest",
    "CreateFolderParams",
    "CreateFolderRequest",
    "DecompressParams",
    "DecompressRequest",
    "DeleteFilesParams",
    "DeleteRequest",
    "DetailedParams",
    "FileAction",
    "FileContent",
    "FileDone",
    "FileEntries",
    "FileEntry",
    "FileMode",
    "FileName",
    "FileNames",
    "FilePath",
    "FileSearch",
    "FilesAnswer",
    "FilesCommand",
    "FilesListParams",
    "FilesParams",
    "ReadParams",
    "RenameParams",
    "RenameRequest",
    "SearchParams",
    "WriteParams",
    "WriteRequest",
    "files_command_kind",
]

FILES_TRANSFER_SUBJECT = "coordinator/files"
"""``sub`` of the JWT (signed with the node's dispatch key) with which the coordinator relays a
streamed upload or download: it opens only ``/volumes/{id}/read`` and ``/volumes/{id}/upload``
of the server its ``jti`` names (``files:<server>:<random>``), and runs no command."""
FILES_TRANSFER_PREFIX = "files:"

MAX_PATH = 4096
"""Longest path the agent takes (Linux's ``PATH_MAX``)."""
MAX_NAME = 255
"""Longest single name (Linux's ``NAME_MAX``, in characters here)."""
MAX_BATCH = 1000
"""Most names in one delete, most sources in one compress."""
MAX_CONTENT = 16 * 1024 * 1024
"""Longest text of one ``write`` (the agent's ``server.max_body_size`` bounds it first)."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path must not hold a NUL character")
    return value


def _one_name(value: str) -> str:
    _no_nul(value)
    if "/" in value or value in {".", ".."}:
        raise ValueError("a name is one path component: no '/', not '.' or '..'")
    return value


FilePath = Annotated[
    str,
    Field(max_length=MAX_PATH, description="Relative to the volume root ('/' is that root)"),
    AfterValidator(_no_nul),
]
FileName = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_one_name)]
FileMode = Annotated[
    str,
    Field(
        pattern=r"^0?[0-7]{3}$",
        description="Octal permission bits, '644' or '0755' (no setuid, setgid or sticky bit)",
    ),
]
ArchiveFormat = Literal["tar.gz", "zip"]
ContentEncoding = Literal["utf-8", "base64"]


# -- route bodies ------------------------------------------------------------------------------
class WriteRequest(Request):
    """``POST /volumes/{id}/write``: replace (or create) a text file, atomically."""

    filename: FilePath = Field(min_length=1)
    content: str = Field(max_length=MAX_CONTENT)


class CreateFolderRequest(Request):
    root: FilePath = "/"
    name: FilePath = Field(min_length=1)


class CopyRequest(Request):
    source: FilePath = Field(min_length=1)
    destination: FilePath = Field(min_length=1)
    is_folder: bool = False


class RenameRequest(Request):
    """``{"from": ..., "to": ...}``: rename or move inside the volume."""

    from_: FilePath = Field(alias="from", min_length=1)
    to: FilePath = Field(min_length=1)


class DeleteRequest(Request):
    """``{"root": "/", "files": ["a.txt", "logs"]}``: folders go with all they hold."""

    root: FilePath = "/"
    files: list[FilePath] = Field(min_length=1, max_length=MAX_BATCH)


class ChmodRequest(Request):
    path: FilePath = Field(min_length=1)
    mode: FileMode


class CompressRequest(Request):
    sources: list[FilePath] = Field(min_length=1, max_length=MAX_BATCH)
    output: FilePath = Field(min_length=1)
    format: ArchiveFormat = "tar.gz"


class DecompressRequest(Request):
    root: FilePath = "/"
    file: FilePath = Field(min_length=1)


# -- answers -----------------------------------------------------------------------------------
class FileNames(Payload):
    """``GET /volumes/{id}/files``: the names in one directory, sorted.

    ``hidden`` counts names that are not valid UTF-8 (never listed; see docs/agent.md).
    """

    files: list[str]
    hidden: int = 0


class FileEntry(Payload):
    name: str
    path: str = Field(description="From the volume root, starting with '/'")
    size: int
    is_dir: bool
    is_symlink: bool = False
    mode: str = Field(description="Octal permission bits, e.g. '0644'")
    modified: Timestamp


class FileEntries(Payload):
    """``GET /volumes/{id}/files/detailed``: one page of a directory, sorted by name."""

    files: list[FileEntry]
    total: int = Field(description="Entries in the directory (valid UTF-8 names)")
    offset: int
    limit: int
    next_offset: int | None = Field(description="The next page's offset; null on the last")
    hidden: int = 0


class FileSearch(Payload):
    """``GET /volumes/{id}/search``: matches by name, at most ``limit``."""

    files: list[FileEntry]
    truncated: bool = Field(description="More matches (or more entries to look at) were left")


class FileDone(Payload):
    """What every changing route answers: ``{"success": true, "path": "/the/path"}``."""

    success: bool = True
    path: str
    size: int | None = Field(default=None, exclude_if=lambda value: value is None)
    skipped: int | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Entries left out (links, devices, hard-linked files; see docs/agent.md)",
    )


class FileContent(Payload):
    """A ``files.read`` command's answer: the file, whole (bounded; larger: the stream)."""

    path: str
    size: int
    encoding: ContentEncoding
    content: str


# -- commands ----------------------------------------------------------------------------------
FileAction = Literal[
    "files.list",
    "files.detailed",
    "files.read",
    "files.write",
    "files.mkdir",
    "files.copy",
    "files.rename",
    "files.delete",
    "files.chmod",
    "files.compress",
    "files.decompress",
    "files.search",
]
FILES_ACTIONS: tuple[str, ...] = (
    "files.list",
    "files.detailed",
    "files.read",
    "files.write",
    "files.mkdir",
    "files.copy",
    "files.rename",
    "files.delete",
    "files.chmod",
    "files.compress",
    "files.decompress",
    "files.search",
)


class FilesParams(Request):
    """``params`` of every ``files.*`` command (as ``commands.ServerParams``)."""

    timeout: Duration | None = Field(default=None, description="How long to wait, e.g. '30s'")
    server: Identifier = Field(description="The server id")


class FilesListParams(FilesParams):
    path: FilePath = "/"


class DetailedParams(FilesListParams):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=200, ge=1, le=1000)


class ReadParams(FilesParams):
    path: FilePath = Field(min_length=1)
    encoding: ContentEncoding = "utf-8"


class WriteParams(FilesParams):
    path: FilePath = Field(min_length=1)
    content: str = Field(max_length=MAX_CONTENT)
    encoding: ContentEncoding = "utf-8"


class CreateFolderParams(FilesParams, CreateFolderRequest):
    """The ``CreateFolderRequest`` body as a command's ``params``."""


class CopyParams(FilesParams, CopyRequest):
    """The ``CopyRequest`` body as a command's ``params``."""


class RenameParams(FilesParams, RenameRequest):
    """The ``RenameRequest`` body as a command's ``params``."""


class DeleteFilesParams(FilesParams, DeleteRequest):
    """The ``DeleteRequest`` body as a command's ``params``."""


class ChmodParams(FilesParams, ChmodRequest):
    """The ``ChmodRequest`` body as a command's ``params``."""


class CompressParams(FilesParams, CompressRequest):
    """The ``CompressRequest`` body as a command's ``params``."""


class DecompressParams(FilesParams, DecompressRequest):
    """The ``DecompressRequest`` body as a command's ``params``."""


class SearchParams(FilesParams):
    pattern: str = Field(min_length=1, max_length=MAX_NAME)
    path: FilePath = "/"
    limit: int = Field(default=100, ge=1, le=1000)


class _FilesCommand(Request):
    id: str | None = Field(default=None, description="Set by the coordinator when it dispatches")
    user: str | None = None
    type: Literal["container"]


class _List(_FilesCommand):
    action: Literal["files.list"]
    params: FilesListParams


class _Detailed(_FilesCommand):
    action: Literal["files.detailed"]
    params: DetailedParams


class _Read(_FilesCommand):
    action: Literal["files.read"]
    params: ReadParams


class _Write(_FilesCommand):
    action: Literal["files.write"]
    params: WriteParams


class _Mkdir(_FilesCommand):
    action: Literal["files.mkdir"]
    params: CreateFolderParams


class _Copy(_FilesCommand):
    action: Literal["files.copy"]
    params: CopyParams


class _Rename(_FilesCommand):
    action: Literal["files.rename"]
    params: RenameParams


class _Delete(_FilesCommand):
    action: Literal["files.delete"]
    params: DeleteFilesParams


class _Chmod(_FilesCommand):
    action: Literal["files.chmod"]
    params: ChmodParams


class _Compress(_FilesCommand):
    action: Literal["files.compress"]
    params: CompressParams


class _Decompress(_FilesCommand):
    action: Literal["files.decompress"]
    params: DecompressParams


class _Search(_FilesCommand):
    action: Literal["files.search"]
    params: SearchParams


def files_command_kind(value: Any) -> str | None:
    """The member of :data:`FilesCommand` for a body: its ``action``, when it is a files one."""
    action = value.get("action") if isinstance(value, dict) else getattr(value, "action", None)
    return action if isinstance(action, str) and action in FILES_ACTIONS else None


FilesCommand = Annotated[
    Annotated[_List, Tag("files.list")]
    | Annotated[_Detailed, Tag("files.detailed")]
    | Annotated[_Read, Tag("files.read")]
    | Annotated[_Write, Tag("files.write")]
    | Annotated[_Mkdir, Tag("files.mkdir")]
    | Annotated[_Copy, Tag("files.copy")]
    | Annotated[_Rename, Tag("files.rename")]
    | Annotated[_Delete, Tag("files.delete")]
    | Annotated[_Chmod, Tag("files.chmod")]
    | Annotated[_Compress, Tag("files.compress")]
    | Annotated[_Decompress, Tag("files.decompress")]
    | Annotated[_Search, Tag("files.search")],
    Discriminator(
        files_command_kind,
        custom_error_type="command_kind",
        custom_error_message=f"unknown files action: use one of {', '.join(FILES_ACTIONS)}",
    ),
]
"""A ``files.*`` container command; a member of :data:`lightd_shared.commands.Command`."""


class FilesAnswer(Payload):
    """A ``files.*`` command's answer in the result's ``data``: ``kind`` is ``"files"`` and
    exactly one of ``names``, ``entries``, ``search``, ``content``, ``done`` is set."""

    kind: Literal["files"] = "files"
    action: FileAction
    names: FileNames | None = None
    entries: FileEntries | None = None
    search: FileSearch | None = None
    content: FileContent | None = None
    done: FileDone | None = None
