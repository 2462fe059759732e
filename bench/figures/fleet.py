"""Figures 10, 11 and 12: a large fleet on the ``redis`` registry, two replicas on one Redis.

10. ``big_fleet`` (100,000) nodes stored in Redis: the RSS of each of two replicas, Redis's own
    ``used_memory`` (``INFO memory``) over the empty server's, and the latency of
    ``GET /api/v1/nodes?limit=100`` and ``GET /api/v1/nodes?label=rack=07`` (1 % of the fleet,
    every match returned), sequential requests alternating between the replicas. The nodes are
    stored through the provider's own ``RedisRegistry.put_node`` (what a registration stores,
    without the HTTP round trip, whose rate is figure 9): 100,000 registrations would take
    minutes of the run.
11. The largest fleet two replicas keep ``active`` with zero false ``inactive``: for each size
    of ``hold_steps`` (ascending, stopping at the first that fails), fresh replicas, the nodes
    stored (on the running replicas, just before the beats start), then ``bench.beatload``
    plays them for ``hold_seconds``, every node beating every ``hold_interval`` (half through
    each replica), with ``node_timeout`` six intervals (the defaults' 60 s over 10 s).
    Heartbeat stretching is switched off (``max_heartbeat_rate`` far above the rate): with it
    on, any fleet is asked for at most 500 beats/s, so the figure would measure nothing. A step
    holds when no ``node_inactive`` event was appended to the shared log, no node is
    ``inactive`` at the end and every beat was sent and answered 2xx.
12. SSE across replicas: ``replica_subscribers`` ``/ws`` subscribers on replica B, events
    published through replica A, publish to the last subscriber (p99).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench.context import Run
from bench.figures.coordinator import register, registration_body, start_coordinator
from bench.figures.scaling import _redis, _wait_redis
from bench.procs import Proc, kill_quietly, rss_mib, start
from bench.report import Figure
from bench.stats import percentile, summary
from lightd_coordinator.registry.base import StoredNode
from lightd_coordinator.registry.redis import RedisRegistry
from lightd_shared.nodes import NodeRecord
from lightd_shared.timestamps import utcnow

__all__ = ["fleet_figures"]

_PREFIX = "lightd:"


async def seed(redis_url: str, ids: list[str], concurrency: int = 50) -> float:
    """Store ``ids`` as freshly registered nodes through the redis provider; the seconds."""
    registry = RedisRegistry(redis_url, prefix=_PREFIX)
    await registry.open()
    began = time.monotonic()
    queue = list(reversed(ids))

    async def worker() -> None:
        while queue:
            node = queue.pop()
            now = utcnow()
            record = NodeRecord.model_validate(
                {**registration_body(node), "created_at": now, "last_seen": now}
            )
            await registry.put_node(StoredNode(record=record, active_since=now))

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await registry.close()
    return time.monotonic() - began


async def _used_memory(client: Any) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


def _replicas(
    run: Run, tag: str, redis_url: str, registry: dict[str, Any]
) -> tuple[Proc, str, Proc, str]:
    extra = {
        "registry": {"provider": "redis", "redis_url": redis_url, **registry},
        "websocket": {"history_size": 1_000_000},
    }
    a, url_a = start_coordinator(run, f"{tag}-a", extra)
    b, url_b = start_coordinator(run, f"{tag}-b", extra)
    return a, url_a, b, url_b


async def _latencies(urls: list[str], path: str, count: int) -> tuple[list[float], int]:
    times: list[float] = []
    nodes = 0
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    try:
        for client in clients:  # one warm-up each: connections and caches
            (await client.get(path)).raise_for_status()
        for k in range(count):
            client = clients[k % len(clients)]
            began = time.perf_counter()
            response = await client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
            nodes = len(response.json()["nodes"])
    finally:
        for client in clients:
            await client.aclose()
    return times, nodes


async def figure_10(run: Run, redis_url: str, client: Any) -> list[Figure]:
    sizes = run.sizes
    await client.flushall()
    empty = await _used_memory(client)
    ids = [f"node-{i:06d}" for i in range(sizes.big_fleet)]
    seeded_in = await seed(redis_url, ids)
    used = await _used_memory(client) - empty
    a, url_a, b, url_b = _replicas(run, "big", redis_url, {})
    procs = [a, b]
    try:
        urls = [url_a, url_b]
        page, page_n = await _latencies(urls, "/api/v1/nodes?limit=100", sizes.list_requests)
        label, label_n = await _latencies(urls, "/api/v1/nodes?label=rack=07", sizes.list_requests)
        rss = [rss_mib(p.pid) for p in procs]
    finally:
        for proc in procs:
            kill_quietly(proc)
    per_node = used / len(ids)
    size = f"{len(ids):,} nodes, 2 replicas"
    page_p99, label_p99 = percentile(page, 99), percentile(label, 99)
    return [
        Figure(
            figure="10a. Footprint on redis: RSS of each replica, large fleet",
            value=max(rss),
            unit="MiB",
            target="<= 250",
            met=max(rss) <= 250,
            size=size,
            detail=f"replica A {rss[0]:.0f} MiB, B {rss[1]:.0f} MiB after the list queries; "
            f"the fleet lives in Redis, not in the replicas",
        ),
        Figure(
            figure="10b. Footprint on redis: Redis used_memory per node",
            value=per_node,
            unit="B",
            target="<= 2,048",
            met=per_node <= 2048,
            size=size,
            detail=f"{used / 2**20:,.0f} MiB over the empty server (INFO memory used_memory); "
            f"stored in {seeded_in:.0f} s through RedisRegistry.put_node",
            extra={"used_memory": used, "seed_seconds": seeded_in},
        ),
        Figure(
            figure="10c. GET /api/v1/nodes?limit=100 on redis (p99)",
            value=page_p99,
            unit="ms",
            target="< 100",
            met=page_p99 < 100 and page_n == min(100, len(ids)),
            size=f"{len(ids):,} nodes, {len(page)} requests",
            detail=f"p50 {percentile(page, 50):.1f} ms; {page_n} nodes per answer; sequential, "
            f"alternating A and B",
            extra={"ms": summary(page)},
        ),
        Figure(
            figure="10d. GET /api/v1/nodes?label=rack=07 on redis (p99)",
            value=label_p99,
            unit="ms",
            target="< 250",
            met=label_p99 < 250 and label_n == len(ids) // 100,
            size=f"{len(ids):,} nodes, {label_n:,} match, {len(label)} requests",
            detail=f"p50 {percentile(label, 50):.1f} ms; every match returned (no limit); "
            f"sequential, alternating A and B",
            extra={"ms": summary(label)},
        ),
    ]


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


async def _inactive_events(client: Any) -> int:
    count = 0
    after = "-"
    while True:
        entries = await client.xrange(f"{_PREFIX}events", min=after, count=10_000)
        for entry_id, fields in entries:
            if fields.get(b"t") == b"node_inactive":
                count += 1
            after = f"({entry_id.decode()}"
        if len(entries) < 10_000:
            return count


async def _hold(run: Run, redis_url: str, client: Any, nodes: int) -> dict[str, Any]:
    sizes = run.sizes
    interval = sizes.hold_interval
    await client.flushall()
    ids = [f"hold-{i:06d}" for i in range(nodes)]
    settings = {
        "heartbeat_interval": _ms(interval),
        "node_timeout": _ms(6 * interval),
        "health_check_interval": _ms(interval),
        "max_heartbeat_rate": 1e9,
    }
    a, url_a, b, url_b = _replicas(run, f"hold-{nodes}", redis_url, settings)
    procs = [a, b]
    try:
        # stored just before the beats start: a node's first beat is due within one interval
        await seed(redis_url, ids)
        half = nodes // 2
        spec = {
            "targets": [
                {"port": int(url_a.rsplit(":", 1)[1]), "nodes": ids[:half]},
                {"port": int(url_b.rsplit(":", 1)[1]), "nodes": ids[half:]},
            ],
            "interval": interval,
            "duration": sizes.hold_seconds,
            "connections": 8,
        }
        spec_path = run.run_dir / f"beatload-{nodes}.json"
        spec_path.write_text(json.dumps(spec))
        beater = start(
            f"beatload-{nodes}",
            [sys.executable, "-m", "bench.beatload", str(spec_path)],
            run.run_dir,
        )
        try:
            await asyncio.to_thread(beater.popen.wait, sizes.hold_seconds + 60)
        finally:
            kill_quietly(beater)
        lines = [ln for ln in beater.log_path.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"beatload printed no result:\n{beater.tail()}")
        result: dict[str, Any] = json.loads(lines[-1])
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died:\n{proc.tail()}")
    finally:
        for proc in procs:
            kill_quietly(proc)
    result["inactive_events"] = await _inactive_events(client)
    result["inactive_at_end"] = int(await client.scard(f"{_PREFIX}idx:status:inactive"))
    result["nodes"] = nodes
    result["held"] = (
        result["inactive_events"] == 0
        and result["inactive_at_end"] == 0
        and result["errors"] == 0
        and result["unfinished"] == 0
    )
    return result


async def figure_11(run: Run, redis_url: str, client: Any) -> Figure:
    sizes = run.sizes
    steps: list[dict[str, Any]] = []
    for nodes in sizes.hold_steps:
        if run.remaining() < sizes.hold_seconds + 60:
            run.notes.append(f"Figure 11 stopped before {nodes:,} nodes: the run's budget.")
            break
        step = await _hold(run, redis_url, client, nodes)
        steps.append(step)
        if not step["held"]:
            break
    held = [s["nodes"] for s in steps if s["held"]]
    value = float(max(held)) if held else None
    interval = sizes.hold_interval
    shown = "; ".join(
        f"{s['nodes']:,} ({s['nodes'] / interval:,.0f} beats/s): "
        f"{'held' if s['held'] else 'not held'}, {s['inactive_events']} node_inactive, "
        f"{s['errors']} errors, {s['unfinished']} connections still behind 30 s after, "
        f"longest gap {s['max_gap_s']:.1f} s, lateness p99 "
        f"{s['lateness_ms']['p99']:.0f} ms, client CPU {s['client_cpu_seconds']:.0f} s"
        for s in steps
    )
    return Figure(
        figure="11. Fleet two replicas keep active (0 false inactive)",
        value=value,
        unit="nodes",
        target=f">= {sizes.hold_steps[0]:,}",
        met=None if not steps else bool(held),
        size=f"{sizes.hold_seconds:.0f} s per step, a beat every {interval:g} s, "
        f"node_timeout {6 * interval:g} s, no stretching",
        detail=f"tried {shown}" if steps else "not measured: no time left in the run",
        extra={"steps": steps},
    )


async def figure_12(run: Run, redis_url: str, client: Any) -> Figure:
    sizes = run.sizes
    await client.flushall()
    a, url_a, b, url_b = _replicas(run, "fanout", redis_url, {})
    procs = [a, b]
    try:
        await register(url_a, ["publisher"])
        spec = {
            "port": int(url_b.rsplit(":", 1)[1]),
            "publish_port": int(url_a.rsplit(":", 1)[1]),
            "node": "publisher",
            "subscribers": sizes.replica_subscribers,
            "publishes": sizes.publishes,
            "timeout": 5.0,
            "gap": 0.05,
        }
        spec_path = run.run_dir / "fanout-replicas.json"
        spec_path.write_text(json.dumps(spec))
        fan = start(
            "fanout-replicas",
            [sys.executable, "-m", "bench.fanout_client", str(spec_path)],
            run.run_dir,
        )
        try:
            await asyncio.to_thread(fan.popen.wait, 120 + sizes.publishes * 6)
        finally:
            kill_quietly(fan)
    finally:
        for proc in procs:
            kill_quietly(proc)
    lines = [ln for ln in fan.log_path.read_text().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"fan-out client printed no result:\n{fan.tail()}")
    result = json.loads(lines[-1])
    last: list[float] = result["last_ms"]
    each: list[float] = result["each_ms"]
    p99 = percentile(last, 99)
    return Figure(
        figure="12. SSE across replicas: publish on A -> last subscriber on B (p99)",
        value=p99,
        unit="ms",
        target="< 250",
        met=p99 < 250 and result["incomplete"] == 0,
        size=f"{sizes.replica_subscribers:,} subscribers on B, {len(last)} events",
        detail=f"p50 {percentile(last, 50):.0f} ms; one subscriber's delay p50 "
        f"{percentile(each, 50):.0f} ms, p99 {percentile(each, 99):.0f} ms; "
        f"{result['incomplete']} events not delivered to all within 5 s",
        extra={"last_ms": summary(last), "each_ms": summary(each)},
    )


async def fleet_figures(run: Run) -> list[Figure]:
    server, redis_url = _redis(run.run_dir)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await _wait_redis(redis_url, server)
        figures = [await figure_12(run, redis_url, client)]
        figures += await figure_10(run, redis_url, client)
        figures.append(await figure_11(run, redis_url, client))
        return figures
    finally:
        await client.aclose()
        kill_quietly(server)
