"""The file routes' entry point: which volume, and blocking work off the event loop.

:class:`FileService` finds a server's volume (the server must be known to the manager, else
404) and runs each blocking operation in a thread, at most ``files.workers`` at once (the rest
wait their turn). An ``OSError`` or archive error no operation turned into a 4xx becomes a 409
with its reason: the file routes never answer 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from lightd_agent.config import AgentConfig
from lightd_agent.errors import AgentError, Conflict, PayloadTooLarge
from lightd_agent.files.archive import ArchiveLimits, compress, decompress
from lightd_agent.files.volume import CHUNK, Volume, parse_mode
from lightd_agent.files.walker import os_error
from lightd_agent.files.writer import AtomicFile
from lightd_agent.servers import ServerManager
from lightd_shared.files import (
    ArchiveFormat,
    FileDone,
    FileEntries,
    FileNames,
    FileSearch,
)

__all__ = ["Download", "FileService", "Upload"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Download:
    """An opened regular file, read in chunks off the loop; :meth:`close` when done."""

    def __init__(self, service: FileService, fd: int, size: int, name: str) -> None:
        self.service = service
        self.fd = fd
        self.size = size
        self.name = name

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            sent = 0
            while sent < self.size:
                chunk = await asyncio.to_thread(os.read, self.fd, min(CHUNK, self.size - sent))
                if not chunk:
                    break  # it shrank meanwhile; the length said already goes out short
                sent += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Upload:
    """A streamed upload in progress: a temporary file beside the target."""

    def __init__(self, parent: int, file: AtomicFile, where: str, limit: int) -> None:
        self.parent = parent
        self.file = file
        self.where = where
        self.limit = limit

    async def write(self, chunk: bytes) -> None:
        if self.file.size + len(chunk) > self.limit:
            raise PayloadTooLarge(
                f"the upload is larger than {self.limit} bytes (files.max_upload); nothing "
                "was written"
            )
        await asyncio.to_thread(self.file.write, chunk)

    async def commit(self) -> FileDone:
        await asyncio.to_thread(self.file.commit, replace=True)
        return FileDone(path=self.where, size=self.file.size)

    def close(self) -> None:
        self.file.close()
        if self.parent >= 0:
            os.close(self.parent)
            self.parent = -1


class FileService:
    """Safe access to each server's volume root ``storage.volumes_dir / <server id>``."""

    def __init__(self, config: AgentConfig, manager: ServerManager) -> None:
        self.config = config
        self.settings = config.files
        self.manager = manager
        self._slots = asyncio.Semaphore(self.settings.workers)
        self.limits = ArchiveLimits(
            max_size=self.settings.archive_max_size,
            max_ratio=self.settings.archive_max_ratio,
            max_entries=self.settings.archive_max_entries,
        )

    def volume(self, server_id: str) -> Volume:
        self.manager.get(server_id)  # NotFound (404) for a server this agent does not know
        return Volume(
            self.config.storage.volumes_dir / server_id, max_entries=self.settings.max_entries
        )

    async def run(self, server_id: str, work: Callable[[Volume], T]) -> T:
        volume = self.volume(server_id)
        async with self._slots:
            return await asyncio.to_thread(self._guarded, work, volume)

    @staticmethod
    def _guarded(work: Callable[[Volume], T], volume: Volume) -> T:
        try:
            return work(volume)
        except AgentError:
            raise
        except OSError as exc:
            raise os_error(exc, "file operation") from None
        except (ValueError, EOFError, RuntimeError) as exc:
            log.warning("file operation failed: %s", exc)
            raise Conflict(f"the file operation failed: {exc}") from None

    # -- the operations, one per route ---------------------------------------------------------
    async def names(self, server: str, path: str) -> FileNames:
        return await self.run(server, lambda v: v.names(path))

    async def detailed(self, server: str, path: str, offset: int, limit: int) -> FileEntries:
        return await self.run(server, lambda v: v.detailed(path, offset, limit))

    async def search(self, server: str, pattern: str, path: str, limit: int) -> FileSearch:
        visits = self.settings.max_search_visits
        return await self.run(server, lambda v: v.search(pattern, path, limit, visits))

    async def write(self, server: str, path: str, data: bytes) -> FileDone:
        return await self.run(server, lambda v: v.write(path, data))

    async def read_all(self, server: str, path: str) -> tuple[bytes, str]:
        limit = self.settings.max_read_inline
        return await self.run(server, lambda v: v.read_all(path, limit))

    async def mkdir(self, server: str, root: str, name: str) -> FileDone:
        return await self.run(server, lambda v: v.mkdir(root, name))

    async def copy(self, server: str, source: str, destination: str, folder: bool) -> FileDone:
        return await self.run(server, lambda v: v.copy(source, destination, folder))

    async def rename(self, server: str, source: str, target: str) -> FileDone:
        return await self.run(server, lambda v: v.rename(source, target))

    async def delete(self, server: str, root: str, files: list[str]) -> FileDone:
        return await self.run(server, lambda v: v.delete(root, files))

    async def chmod(self, server: str, path: str, mode: str) -> FileDone:
        bits = parse_mode(mode)
        return await self.run(server, lambda v: v.chmod(path, bits))

    async def compress(
        self, server: str, sources: list[str], output: str, fmt: ArchiveFormat
    ) -> FileDone:
        return await self.run(server, lambda v: compress(v, sources, output, fmt, self.limits))

    async def decompress(self, server: str, root: str, file: str) -> FileDone:
        return await self.run(server, lambda v: decompress(v, root, file, self.limits))

    async def open_download(self, server: str, path: str) -> Download:
        fd, size, name = await self.run(server, lambda v: v.open_file(path))
        return Download(self, fd, size, name)

    async def open_upload(self, server: str, path: str) -> Upload:
        parent, file, where = await self.run(server, lambda v: v.begin_write(path))
        return Upload(parent, file, where, self.settings.max_upload)
