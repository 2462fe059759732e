"""The ``files.*`` container commands (``lightd_shared.files.FilesCommand``), run through the
same :class:`~lightd_agent.files.service.FileService` as the ``/volumes/{id}`` routes.

``files.read`` answers the whole file (up to ``files.max_read_inline`` bytes, as UTF-8 text or
base64); larger files travel over the streamed routes (the coordinator relays them, see
docs/coordinator.md). ``files.write`` takes the same bound from the command's size.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeGuard

from lightd_agent.errors import BadRequest
from lightd_agent.files.service import FileService
from lightd_shared.files import (
    FILES_ACTIONS,
    FileContent,
    FilesAnswer,
    FilesCommand,
)

__all__ = ["is_files_command", "run_files_command"]


def is_files_command(command: Any) -> TypeGuard[FilesCommand]:
    return getattr(command, "action", None) in FILES_ACTIONS


def _summary(answer: FilesAnswer) -> str:
    if answer.names is not None:
        return "\n".join(answer.names.files)
    if answer.entries is not None:
        return f"{len(answer.entries.files)} of {answer.entries.total} entries"
    if answer.search is not None:
        more = " (more left)" if answer.search.truncated else ""
        return f"{len(answer.search.files)} match(es){more}"
    if answer.content is not None:
        return f"{answer.content.path}: {answer.content.size} bytes"
    assert answer.done is not None
    return f"{answer.done.path}: done"


async def run_files_command(files: FileService, command: FilesCommand) -> tuple[str, FilesAnswer]:
    """``(output, answer)`` of one files command; an agent error raises (the result: failed)."""
    p: Any = command.params
    action = command.action
    server = p.server
    answer = FilesAnswer(action=action)
    if action == "files.list":
        answer.names = await files.names(server, p.path)
    elif action == "files.detailed":
        answer.entries = await files.detailed(server, p.path, p.offset, p.limit)
    elif action == "files.search":
        answer.search = await files.search(server, p.pattern, p.path, p.limit)
    elif action == "files.read":
        data, path = await files.read_all(server, p.path)
        if p.encoding == "base64":
            text = base64.b64encode(data).decode("ascii")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(
                    f"{path} is not UTF-8 text; read it with params.encoding 'base64'"
                ) from None
        answer.content = FileContent(path=path, size=len(data), encoding=p.encoding, content=text)
    elif action == "files.write":
        if p.encoding == "base64":
            try:
                raw = base64.b64decode(p.content, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("params.content: not valid base64") from None
        else:
            raw = p.content.encode("utf-8")
        answer.done = await files.write(server, p.path, raw)
    elif action == "files.mkdir":
        answer.done = await files.mkdir(server, p.root, p.name)
    elif action == "files.copy":
        answer.done = await files.copy(server, p.source, p.destination, p.is_folder)
    elif action == "files.rename":
        answer.done = await files.rename(server, p.from_, p.to)
    elif action == "files.delete":
        answer.done = await files.delete(server, p.root, p.files)
    elif action == "files.chmod":
        answer.done = await files.chmod(server, p.path, p.mode)
    elif action == "files.compress":
        answer.done = await files.compress(server, p.sources, p.output, p.format)
    else:
        assert action == "files.decompress"
        answer.done = await files.decompress(server, p.root, p.file)
    return _summary(answer), answer
