"""Looking at a server without changing it: logs (tail or follow), stats, exec."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

from lightd_agent.backend.base import Backend, EngineError
from lightd_agent.backend.lines import LineShaper, Shaped
from lightd_agent.errors import Conflict, DockerTimeout
from lightd_agent.servers.model import Server
from lightd_agent.servers.power import locate
from lightd_shared.containers import ContainerStats, ExecResult
from lightd_shared.timestamps import utcnow

__all__ = ["Observer"]

_EXEC_OUTPUT_LIMIT = 64 * 1024


def _elapsed(began: float) -> timedelta:
    return timedelta(seconds=round(time.monotonic() - began, 3))


class Observer:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def logs(self, server: Server, tail: int | None) -> str:
        container = await locate(self.backend, server)
        return await self.backend.output(container.id, "all" if tail is None else tail)

    async def follow_logs(
        self, server: Server, tail: int | None, shaper: LineShaper | None = None
    ) -> AsyncIterator[Shaped]:
        container = await locate(self.backend, server)
        return await self.backend.follow(container.id, "all" if tail is None else tail, shaper)

    async def stats(self, server: Server) -> ContainerStats:
        if server.state != "running":
            raise Conflict(f"server {server.id!r} is {server.state}; stats need it running")
        container = await locate(self.backend, server)
        usage = await self.backend.stats(container.id)
        return ContainerStats(
            id=server.id,
            cpu_percent=usage.cpu_percent,
            memory_usage=usage.memory_usage,
            memory_limit=usage.memory_limit,
            network_rx_bytes=usage.network_rx_bytes,
            network_tx_bytes=usage.network_tx_bytes,
            block_read_bytes=usage.block_read_bytes,
            block_write_bytes=usage.block_write_bytes,
            timestamp=utcnow(),
        )

    async def exec(self, server: Server, command: str | list[str], timeout: float) -> ExecResult:
        if server.state != "running":
            raise Conflict(f"server {server.id!r} is {server.state}; exec needs it running")
        container = await locate(self.backend, server)
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        began = time.monotonic()
        try:
            code, output = await self.backend.exec(container.id, argv, timeout)
        except DockerTimeout:
            return ExecResult(
                id=server.id,
                status="timeout",
                output=f"the command did not finish within {timeout:g}s",
                duration=_elapsed(began),
            )
        except EngineError as exc:
            raise Conflict(f"exec in server {server.id!r} failed: {exc.explanation}") from exc
        return ExecResult(
            id=server.id,
            status="success" if code == 0 else "failed",
            exit_code=code,
            output=output[-_EXEC_OUTPUT_LIMIT:],
            duration=_elapsed(began),
        )
