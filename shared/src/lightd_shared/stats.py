"""Resource history and log follow between an agent, the coordinator and the dashboard.

An agent with ``coordinator.enabled`` pushes one sample per running server every
``coordinator.stats_interval``::

    POST /api/v1/nodes/{id}/stats          {"samples": [<ContainerStats>, ...]}
    -> 202 {"accepted": 2, "dropped": 0}

The coordinator keeps a bounded history per server (``history.*`` settings) and serves it::

    GET /api/v1/nodes/{id}/containers/{server}/stats/history?since=<RFC 3339>&limit=N
    -> {"node_id", "server", "samples": [{"timestamp", "cpu_percent", ...}]}   oldest first

A server's log follow reaches the browser through the coordinator, which opens the agent's
:data:`LOG_FOLLOW_PATH` with a JWT signed with the node's dispatch key whose ``sub`` is
:data:`LOG_FOLLOW_SUBJECT` (so such a token can never run a command: ``POST /commands`` takes
``sub: "coordinator"`` only) and ``jti`` starting with :data:`LOG_FOLLOW_PREFIX` + the server id.
"""

from __future__ import annotations

from pydantic import Field

from lightd_shared.base import Payload
from lightd_shared.containers import ContainerStats
from lightd_shared.timestamps import Timestamp

__all__ = [
    "LOG_FOLLOW_PATH",
    "LOG_FOLLOW_PREFIX",
    "LOG_FOLLOW_SUBJECT",
    "MAX_REPORT_SAMPLES",
    "StatsHistory",
    "StatsReport",
    "StatsReportAnswer",
    "StatsSample",
]

MAX_REPORT_SAMPLES = 256
"""Samples in one report at most (a larger report is a 422, never half-applied)."""

LOG_FOLLOW_PATH = "/coordinator/logs/{server}"
"""The agent's log follow for the coordinator (SSE, ``event: log`` lines), ``?tail=N``."""
LOG_FOLLOW_SUBJECT = "coordinator/logs"
LOG_FOLLOW_PREFIX = "logs:"


class StatsReport(Payload):
    """``POST /api/v1/nodes/{id}/stats``: the newest sample of each running server."""

    samples: list[ContainerStats] = Field(default_factory=list, max_length=MAX_REPORT_SAMPLES)


class StatsReportAnswer(Payload):
    """How many samples were kept and how many the history's bounds dropped."""

    accepted: int = Field(ge=0)
    dropped: int = Field(ge=0)


class StatsSample(Payload):
    """One kept sample: the agent's stats fields without the server id (the path names it)."""

    timestamp: Timestamp
    cpu_percent: float = 0.0
    memory_usage: int = 0
    memory_limit: int = 0
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    block_read_bytes: int = 0
    block_write_bytes: int = 0


class StatsHistory(Payload):
    """``GET .../stats/history``: oldest first; page with ``?since=<last timestamp>``."""

    node_id: str
    server: str
    samples: list[StatsSample] = Field(default_factory=list)
