"""Figures 3, 4 and 7 (coordinator half): real ``lightd-coordinator start -c`` processes.

3. Heartbeats per second with ``nodes`` registered, from a load client in its own process,
   against a bare Starlette endpoint served the same way (``python -m bench.ceiling``: the
   coordinator's uvicorn options and logging, no work); the two alternate in two halves each.
   Also the headroom: the measured rate over what ``nodes`` beating every 10 s need.
7. The coordinator's RSS holding those nodes.
4. 1,000 ``/ws`` subscribers on a second, fresh coordinator (each fresh subscriber gets an
   ``initial_state`` with every node, so the 10,000-node registry would turn this figure into a
   snapshot benchmark), publish to last delivery.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import procs
from bench.context import Run
from bench.procs import (
    Proc,
    coordinator_config,
    free_port,
    kill_quietly,
    rss_mib,
    start,
)
from bench.profile import Profiler
from bench.report import Figure
from bench.stats import percentile, summary

__all__ = ["coordinator_figures", "start_coordinator"]

HEARTBEAT_PERIOD = 10.0


def start_coordinator(run: Run, name: str, extra: dict[str, Any] | None = None) -> tuple[Proc, str]:
    return procs.start_coordinator(run.run_dir, name, extra)


def registration_body(node: str) -> dict[str, Any]:
    """The registration figure 9 sends for ``node`` (and figure 10 stores)."""
    return {
        "id": node,
        "name": node,
        "provider": "docker",
        "address": "127.0.0.1",
        "port": 8070,
        "labels": {"env": "bench", "rack": node[-2:]},
        "capabilities": {"docker": True},
    }


async def register(
    url: str, ids: list[str], concurrency: int = 16, path: str = "/api/v1/nodes"
) -> None:
    """Figure 9's load: ``ids`` registered by ``concurrency`` workers on one httpx client
    (``path``: the same load sent elsewhere, e.g. the bare ``/noop``)."""
    queue = list(reversed(ids))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            node = queue.pop()
            response = await client.post(path, json=registration_body(node))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"registering {node}: {response.status_code} {response.text}")

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def _load(run: Run, spec: dict[str, Any], name: str, server_pid: int) -> dict[str, Any]:
    """One load-client process against one server; with the server's CPU use meanwhile."""
    spec_path = run.run_dir / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    server = psutil.Process(server_pid)
    cpu0 = server.cpu_times()
    client = start(name, [sys.executable, "-m", "bench.httpload", str(spec_path)], run.run_dir)
    try:
        client.popen.wait(spec["duration"] + 60)
    finally:
        kill_quietly(client)
    cpu1 = server.cpu_times()
    lines = [ln for ln in Path(client.log_path).read_text().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"load client {name} printed no result:\n{client.tail()}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["server_cpu_seconds"] = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return result


def _combine(parts: list[dict[str, Any]]) -> dict[str, float]:
    ok = sum(p["ok"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    return {
        "ok": ok,
        "errors": sum(p["errors"] for p in parts),
        "seconds": seconds,
        "rate": ok / seconds if seconds else 0.0,
        "server_cpu": sum(p["server_cpu_seconds"] for p in parts) / seconds if seconds else 0.0,
        "client_cpu": sum(p["client_cpu_seconds"] for p in parts) / seconds if seconds else 0.0,
        "p99_ms": max(p["latencies_ms"]["p99"] for p in parts),
        "max_ms": max(p["latencies_ms"]["max"] for p in parts),
    }


async def figure_3_and_7(run: Run) -> list[Figure]:
    sizes = run.sizes
    coordinator, url = start_coordinator(run, "coordinator-registry")
    ceiling: Proc | None = None
    try:
        ids = [f"node-{i:05d}" for i in range(sizes.nodes)]
        began = time.monotonic()
        await register(url, ids)
        registered_in = time.monotonic() - began
        ceiling_port = free_port()
        ceiling_config = run.run_dir / "ceiling.yaml"
        coordinator_config(ceiling_config, port=ceiling_port)
        ceiling = start(
            "ceiling", [sys.executable, "-m", "bench.ceiling", str(ceiling_config)], run.run_dir
        )
        await _wait_post(f"http://127.0.0.1:{ceiling_port}/noop", ceiling)
        base = {
            "method": "POST",
            "body": '{"status":"active"}',
            "connections": sizes.load_connections,
            "duration": sizes.load_seconds / 2,
            "max_requests": 10_000_000,
        }
        port = int(url.rsplit(":", 1)[1])
        beats = {**base, "port": port, "paths": [f"/api/v1/nodes/{i}/heartbeat" for i in ids]}
        noops = {**base, "port": ceiling_port, "paths": ["/noop"]}
        hb_parts: list[dict[str, Any]] = []
        ceiling_parts: list[dict[str, Any]] = []
        with Profiler(
            coordinator.pid, run.run_dir / "profile-3-coordinator.raw", run.profile
        ) as prof:
            for half in range(2):
                ceiling_parts.append(
                    await asyncio.to_thread(_load, run, noops, f"load-ceiling-{half}", ceiling.pid)
                )
                hb_parts.append(
                    await asyncio.to_thread(
                        _load, run, beats, f"load-heartbeat-{half}", coordinator.pid
                    )
                )
        hb, top = _combine(hb_parts), _combine(ceiling_parts)
        share = 100 * hb["rate"] / top["rate"] if top["rate"] else float("nan")
        needed = sizes.nodes / HEARTBEAT_PERIOD
        headroom = hb["rate"] / needed
        rss = rss_mib(coordinator.pid)
        detail = (
            f"{hb['rate']:,.0f} heartbeats/s vs {top['rate']:,.0f} req/s ceiling; "
            f"server CPU {hb['server_cpu']:.2f} vs {top['server_cpu']:.2f} cores, client CPU "
            f"{hb['client_cpu']:.2f} vs {top['client_cpu']:.2f}; errors {hb['errors']:.0f} vs "
            f"{top['errors']:.0f}; {sizes.load_connections} connections; request latency p99 "
            f"{hb['p99_ms']:.0f} vs {top['p99_ms']:.0f} ms, max {hb['max_ms']:.0f} vs "
            f"{top['max_ms']:.0f} ms"
        )
        return [
            Figure(
                figure="3a. Registry throughput: heartbeats/s vs bare Starlette ceiling",
                value=share,
                unit="%",
                target=">= 50",
                met=share >= 50,
                size=f"{sizes.nodes:,} nodes, {sizes.load_seconds:.0f} s per side",
                detail=detail,
                extra={
                    "heartbeat": hb,
                    "ceiling": top,
                    "profile": prof.summary,
                    "registration_seconds": registered_in,
                },
            ),
            Figure(
                figure="3b. Registry headroom: heartbeat capacity / need at a 10 s period",
                value=headroom,
                unit="x",
                target="> 1 (room left)",
                met=headroom > 1,
                size=f"{sizes.nodes:,} nodes need {needed:,.0f}/s",
                detail=f"one coordinator process; {hb['rate']:,.0f} heartbeats/s measured",
            ),
            Figure(
                figure="7b. Footprint: RSS of a coordinator holding the nodes",
                value=rss,
                unit="MiB",
                target="<= 250",
                met=rss <= 250,
                size=f"{sizes.nodes:,} nodes",
                detail=f"memory registry, after the heartbeat load; registered in "
                f"{registered_in:.1f} s",
            ),
        ]
    finally:
        kill_quietly(ceiling)
        kill_quietly(coordinator)


async def _wait_post(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            try:
                if (await client.post(url)).is_success:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url}:\n{proc.tail()}")


async def figure_4(run: Run) -> Figure:
    sizes = run.sizes
    coordinator, url = start_coordinator(run, "coordinator-fanout")
    try:
        await register(url, ["publisher"])
        spec = {
            "port": int(url.rsplit(":", 1)[1]),
            "node": "publisher",
            "subscribers": sizes.subscribers,
            "publishes": sizes.publishes,
            "timeout": 5.0,
            "gap": 0.05,
        }
        spec_path = run.run_dir / "fanout.json"
        spec_path.write_text(json.dumps(spec))
        client = start(
            "fanout-client",
            [sys.executable, "-m", "bench.fanout_client", str(spec_path)],
            run.run_dir,
        )
        with Profiler(
            coordinator.pid, run.run_dir / "profile-4-coordinator.raw", run.profile
        ) as prof:
            try:
                await asyncio.to_thread(client.popen.wait, 120 + sizes.publishes * 6)
            finally:
                kill_quietly(client)
        lines = [ln for ln in client.log_path.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"fan-out client printed no result:\n{client.tail()}")
        result = json.loads(lines[-1])
        last: list[float] = result["last_ms"]
        each: list[float] = result["each_ms"]
        p50, p99 = percentile(last, 50), percentile(last, 99)
        return Figure(
            figure="4. SSE fan-out: publish -> last of the subscribers (p99)",
            value=p99,
            unit="ms",
            target="< 250",
            met=p99 < 250 and result["incomplete"] == 0,
            size=f"{sizes.subscribers:,} subscribers, {len(last)} events",
            detail=(
                f"p50 {p50:.0f} ms; one subscriber's delay p50 {percentile(each, 50):.0f} ms, "
                f"p99 {percentile(each, 99):.0f} ms; {result['incomplete']} events not "
                f"delivered to all within 5 s; client CPU {result['client_cpu_seconds']:.1f} s"
            ),
            extra={"last_ms": summary(last), "each_ms": summary(each), "profile": prof.summary},
        )
    finally:
        kill_quietly(coordinator)


async def coordinator_figures(run: Run) -> list[Figure]:
    figures = await figure_3_and_7(run)
    figures.append(await figure_4(run))
    return figures
