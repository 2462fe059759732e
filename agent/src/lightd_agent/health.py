"""``GET /health`` in one function, so other subsystems can add their own section to it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from lightd_agent import __version__
from lightd_agent.config import AgentConfig
from lightd_agent.lifecycle import ServerManager
from lightd_shared.containers import AgentHealth
from lightd_shared.timestamps import utcnow

__all__ = ["build_health"]

log = logging.getLogger(__name__)


def build_health(app: FastAPI) -> AgentHealth:
    """Version, uptime, Docker reachability, managed containers by state.

    Every ``name -> () -> dict`` in ``app.state.health_sections`` adds a section under its name
    (remote sync adds ``"remote"``); a section that raises shows its error instead.
    """
    manager: ServerManager = app.state.manager
    config: AgentConfig = app.state.config
    started = manager.started_at
    docker = manager.backend.health()
    extra: dict[str, Any] = {}
    for name, section in dict(app.state.health_sections).items():
        try:
            extra[name] = section()
        except Exception as exc:  # a broken section must not take /health down
            log.exception("health section %s failed", name)
            extra[name] = {"error": str(exc)}
    return AgentHealth(
        status="ok" if docker.get("reachable") else "degraded",
        version=__version__,
        node={"id": config.node.id, "name": config.node.name or config.node.id},
        started_at=started,
        uptime=utcnow() - started,
        docker=docker,
        containers=manager.counts(),
        **extra,
    )
