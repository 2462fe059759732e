"""``/health`` (open to all) and ``/metrics`` (JSON, or Prometheus text on request)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from lightd_coordinator.api.deps import CoordinatorDep, require_auth
from lightd_coordinator.core import Coordinator
from lightd_coordinator.registry import RegistryUnavailable
from lightd_shared.monitoring import (
    HealthReport,
    Metrics,
    NodeMetrics,
    ServiceMetrics,
    WebsocketMetrics,
)
from lightd_shared.timestamps import utcnow

router = APIRouter(tags=["monitoring"])
log = logging.getLogger(__name__)

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
async def health(coordinator: CoordinatorDep) -> Response:
    """Liveness of the coordinator itself, with node counts. Needs no token.

    ``503`` with ``status: "unhealthy"`` and a ``reason`` when the registry cannot be read
    (a replica whose Redis is unreachable).
    """
    try:
        total, active = await coordinator.registry.count_nodes()
    except Exception as exc:
        reason = str(exc) if isinstance(exc, RegistryUnavailable) else type(exc).__name__
        log.error("health check cannot read the registry: %s", reason)
        report = HealthReport(
            status="unhealthy",
            timestamp=utcnow(),
            total_nodes=0,
            active_nodes=0,
            version=coordinator.version,
        )
        body = {**report.model_dump(mode="json"), "reason": f"registry unavailable: {reason}"}
        return JSONResponse(body, status_code=503)
    report = HealthReport(
        status="healthy",
        timestamp=utcnow(),
        total_nodes=total,
        active_nodes=active,
        version=coordinator.version,
    )
    return JSONResponse(report.model_dump(mode="json"))


async def collect(coordinator: Coordinator) -> Metrics:
    stored = await coordinator.registry.list_nodes()
    by_status: Counter[str] = Counter(s.record.status for s in stored)
    by_provider = Counter(s.record.provider for s in stored)
    services = sum(len(s.services or []) for s in stored)
    return Metrics(
        timestamp=utcnow(),
        nodes=NodeMetrics(
            total=len(stored), by_status=dict(by_status), by_provider=dict(by_provider)
        ),
        services=ServiceMetrics(total=services),
        websocket=WebsocketMetrics(connected_clients=coordinator.hub.connected),
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(metrics: Metrics, coordinator: Coordinator) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines = [
        "# HELP lightd_coordinator_nodes Registered nodes.",
        "# TYPE lightd_coordinator_nodes gauge",
        f"lightd_coordinator_nodes {metrics.nodes.total}",
        "# HELP lightd_coordinator_nodes_by_status Registered nodes per status.",
        "# TYPE lightd_coordinator_nodes_by_status gauge",
    ]
    for state in sorted({"active", "inactive", *metrics.nodes.by_status}):
        count = metrics.nodes.by_status.get(state, 0)
        lines.append(f'lightd_coordinator_nodes_by_status{{status="{_label(state)}"}} {count}')
    lines += [
        "# HELP lightd_coordinator_nodes_by_provider Registered nodes per provider.",
        "# TYPE lightd_coordinator_nodes_by_provider gauge",
    ]
    for provider, count in sorted(metrics.nodes.by_provider.items()):
        lines.append(
            f'lightd_coordinator_nodes_by_provider{{provider="{_label(provider)}"}} {count}'
        )
    lines += [
        "# HELP lightd_coordinator_services Services reported by nodes.",
        "# TYPE lightd_coordinator_services gauge",
        f"lightd_coordinator_services {metrics.services.total}",
        "# HELP lightd_coordinator_websocket_connected_clients Clients on the event stream.",
        "# TYPE lightd_coordinator_websocket_connected_clients gauge",
        f"lightd_coordinator_websocket_connected_clients {metrics.websocket.connected_clients}",
        "# HELP lightd_coordinator_events_published_total Events published since start.",
        "# TYPE lightd_coordinator_events_published_total counter",
        f"lightd_coordinator_events_published_total {coordinator.hub.published}",
        "# HELP lightd_coordinator_event_clients_dropped_total Slow clients disconnected.",
        "# TYPE lightd_coordinator_event_clients_dropped_total counter",
        f"lightd_coordinator_event_clients_dropped_total {coordinator.hub.dropped}",
        "# HELP lightd_coordinator_commands_total Commands finished since start, per status.",
        "# TYPE lightd_coordinator_commands_total counter",
    ]
    for state in ("success", "failed", "timeout"):
        count = coordinator.dispatcher.finished.get(state, 0)
        lines.append(f'lightd_coordinator_commands_total{{status="{state}"}} {count}')
    return "\n".join(lines) + "\n"


@router.get(
    "/metrics",
    response_model=Metrics,
    dependencies=[Depends(require_auth)],
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(
    request: Request,
    coordinator: CoordinatorDep,
    format: Annotated[Literal["json", "prometheus"] | None, Query()] = None,
) -> Response:
    """JSON as in the seed; Prometheus text for ``Accept: text/plain`` or ``?format=prometheus``."""
    collected = await collect(coordinator)
    accept = request.headers.get("accept", "")
    wants_text = format == "prometheus" or (
        format is None and "text/plain" in accept and "application/json" not in accept
    )
    if wants_text:
        return PlainTextResponse(prometheus(collected, coordinator), media_type=PROMETHEUS_TYPE)
    return JSONResponse(collected.model_dump(mode="json"))
