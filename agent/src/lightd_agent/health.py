"""``GET /health`` in one function, so other subsystems can add their own section to it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lightd_agent import __version__
from lightd_agent.config import AgentConfig
from lightd_shared.containers import AgentHealth
from lightd_shared.timestamps import utcnow

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["build_health"]

log = logging.getLogger(__name__)


def build_health(agent: Agent) -> AgentHealth:
    """Version, uptime, Docker reachability, managed containers by state.

    Every ``name -> () -> dict`` in the agent's ``health_sections`` adds a section under its name
    (remote sync adds ``"remote"``); a section that raises shows its error instead.

    ``status`` is ``degraded`` when Docker is unreachable or a section reports a
    ``degraded_reason`` (at its top, or in a named sub-section such as ``remotes.<name>``):
    an agent that refuses lifecycle actions because an outbox is full or cannot be written is
    not "ok", whatever Docker says.
    """
    manager = agent.manager
    config: AgentConfig = agent.config
    started = manager.started_at
    docker = manager.backend.health()
    extra: dict[str, Any] = {}
    for name, section in dict(agent.health_sections).items():
        try:
            extra[name] = section()
        except Exception as exc:  # a broken section must not take /health down
            log.exception("health section %s failed", name)
            extra[name] = {"error": str(exc)}
    healthy = bool(docker.get("reachable")) and not any(
        _degraded(section) for section in extra.values()
    )
    return AgentHealth(
        status="ok" if healthy else "degraded",
        version=__version__,
        node={"id": config.node.id, "name": config.node.name or config.node.id},
        started_at=started,
        # whole seconds, as the documents write it (1h2m3s) and the coordinator reports it
        uptime=timedelta(seconds=int((utcnow() - started).total_seconds())),
        docker=docker,
        containers=manager.counts(),
        **extra,
    )


def _degraded(section: Any) -> bool:
    """A section (or one of its named sub-sections) gives a reason the agent is degraded."""
    if not isinstance(section, dict):
        return False
    if section.get("degraded_reason"):
        return True
    return any(_degraded(value) for value in section.values() if isinstance(value, dict))
