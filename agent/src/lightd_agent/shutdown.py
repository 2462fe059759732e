"""Serving the agent with a draining shutdown (uvicorn's pattern, one step earlier).

The first SIGTERM or SIGINT does not stop uvicorn at once: the agent starts refusing new work
(503 with the reason; ``/health`` still answers), running installs and power actions get
``server.shutdown_grace`` to finish, what is left is cancelled and named in the log, and only
then uvicorn shuts down as usual. A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI

from lightd_agent.core import Agent

__all__ = ["DrainingServer"]

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains the agent before it stops."""

    def __init__(self, config: uvicorn.Config, agent: Agent) -> None:
        super().__init__(config)
        self.agent = agent
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if self._drain is not None or loop is None or not self.started:
            super().handle_exit(sig, frame)  # a second signal, or not serving yet: stop now
            return
        self.agent.begin_drain()
        loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        async def drain() -> None:
            try:
                await self.agent.drain()
            except Exception:
                log.exception("draining the agent failed; shutting down")
            finally:
                super(DrainingServer, self).handle_exit(sig, frame)

        self._drain = asyncio.ensure_future(drain())

    @classmethod
    def for_app(cls, app: FastAPI, config: uvicorn.Config) -> DrainingServer:
        return cls(config, app.state.agent)
