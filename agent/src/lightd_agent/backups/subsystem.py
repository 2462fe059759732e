"""The backups' part of the agent's start and stop.

Entered before the server manager starts (so before any server starts): cut-off restores are
finished (:mod:`.swap`: the volume whole, old or new) and cut-off backups marked ``failed``.
At stop, running backups and extractions are cut off within ``server.shutdown_grace``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["backups_subsystem"]


@asynccontextmanager
async def backups_subsystem(agent: Agent) -> AsyncIterator[None]:
    await asyncio.to_thread(agent.backups.recover)
    try:
        yield
    finally:
        await agent.backups.stop(agent.config.server.shutdown_grace.total_seconds())
