"""Coordinator monitoring bodies (seed ``003``): ``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lightd_shared.base import Payload
from lightd_shared.timestamps import Timestamp

__all__ = ["HealthReport", "Metrics", "NodeMetrics", "ServiceMetrics", "WebsocketMetrics"]


class HealthReport(Payload):
    """``GET /health``."""

    status: Literal["healthy", "degraded", "unhealthy"] = "healthy"
    timestamp: Timestamp
    total_nodes: int = Field(ge=0)
    active_nodes: int = Field(ge=0)
    version: str


class NodeMetrics(Payload):
    total: int = Field(ge=0)
    by_status: dict[str, int] = Field(default_factory=dict)
    by_provider: dict[str, int] = Field(default_factory=dict)


class ServiceMetrics(Payload):
    total: int = Field(ge=0)


class WebsocketMetrics(Payload):
    connected_clients: int = Field(ge=0)


class Metrics(Payload):
    """``GET /metrics`` (JSON form; the coordinator also renders it for Prometheus)."""

    timestamp: Timestamp
    nodes: NodeMetrics
    services: ServiceMetrics
    websocket: WebsocketMetrics
