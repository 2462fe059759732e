"""Stats reports to the coordinator: every running server's sample, every ``stats_interval``.

With ``coordinator.enabled``, for as long as the agent runs, every
``coordinator.stats_interval`` (drift-free) the agent reads one
:class:`~lightd_shared.containers.ContainerStats` sample per running server (at most
:data:`_CONCURRENCY` Docker calls at once) and posts them in one
:class:`~lightd_shared.stats.StatsReport` to ``POST /api/v1/nodes/{id}/stats``, with the same
token and node proof as its heartbeats. The coordinator keeps them as the servers' resource
history (the dashboard's charts). A failed read or post is logged at debug and skipped: the
next tick tries again, nothing is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from lightd_agent import __version__
from lightd_agent.config import AgentConfig
from lightd_agent.errors import AgentError
from lightd_agent.security import NodeProofSigner
from lightd_agent.servers import ServerManager
from lightd_shared.containers import ContainerStats
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.stats import MAX_REPORT_SAMPLES, StatsReport

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["StatsReporter", "stats_subsystem"]

log = logging.getLogger(__name__)

_CONCURRENCY = 8


class StatsReporter:
    def __init__(
        self,
        config: AgentConfig,
        manager: ServerManager,
        dispatch_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self._proofs = NodeProofSigner(dispatch_key, config.node.id)
        self._transport = transport
        self._task: asyncio.Task[None] | None = None
        self.reports = 0

    @property
    def interval(self) -> float:
        return self.config.coordinator.stats_interval.total_seconds()

    def _headers(self) -> dict[str, str]:
        headers = {NODE_PROOF_HEADER: self._proofs()}
        token = self.config.coordinator.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def samples(self) -> list[ContainerStats]:
        """One sample per running server (those whose read failed are left out)."""
        running = sorted(s.id for s in self.manager.servers.values() if s.state == "running")
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def read(server_id: str) -> ContainerStats | None:
            async with limit:
                try:
                    return await self.manager.stats(server_id)
                except (AgentError, Exception) as exc:  # stopped meanwhile, Docker busy...
                    log.debug("no stats sample of %s: %s", server_id, type(exc).__name__)
                    return None

        found = await asyncio.gather(*(read(s) for s in running[:MAX_REPORT_SAMPLES]))
        return [sample for sample in found if sample is not None]

    async def report(self, client: httpx.AsyncClient) -> bool:
        samples = await self.samples()
        if not samples:
            return True
        coordinator = self.config.coordinator
        try:
            response = await client.post(
                coordinator.endpoint(f"api/v1/nodes/{self.config.node.id}/stats"),
                json=StatsReport(samples=samples).model_dump(mode="json"),
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            log.debug("stats report not sent: %s", type(exc).__name__)
            return False
        if not response.is_success:
            log.debug("stats report refused: HTTP %s", response.status_code)
            return False
        self.reports += 1
        return True

    async def _run(self) -> None:
        timeout = max(2.0, min(10.0, self.interval))
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=timeout,
            trust_env=False,
            headers={"User-Agent": f"lightd/{__version__}"},
        ) as client:
            while True:
                began = time.monotonic()
                try:
                    await self.report(client)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug must not end the reports for good
                    log.exception("stats report crashed; trying again next interval")
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="coordinator-stats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@asynccontextmanager
async def stats_subsystem(agent: Agent) -> AsyncIterator[StatsReporter | None]:
    """Report stats for the life of ``agent`` when ``coordinator.enabled``; else do nothing."""
    config: AgentConfig = agent.config
    if not config.coordinator.enabled:
        yield None
        return
    reporter = StatsReporter(config, agent.manager, agent.dispatch_key)
    reporter.start()
    try:
        yield reporter
    finally:
        await reporter.stop()
