"""Figures 8 and 9: coordinator replicas on the ``redis`` registry, side by side with their
single-process and bare-endpoint counterparts in the same run.

8a. Heartbeats/s of one coordinator on redis against one bare Starlette endpoint.
8b. Heartbeats/s of two replicas on one Redis (a load client each) against two bare endpoints:
    the scaling ratio next to the ceiling's. On two cores, two replicas, Redis and two load
    clients share the machine, so the ratio, not the rate, is the figure.
9.  Registration throughput (nodes/s, 16 concurrent requests): memory against redis.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.context import Run
from bench.figures.coordinator import _combine, _load, _wait_post, register, start_coordinator
from bench.procs import Proc, coordinator_config, free_port, kill_quietly, start
from bench.report import Figure

__all__ = ["scaling_figures"]


def _redis(run_dir: Path) -> tuple[Proc, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        run_dir,
    )
    return proc, f"redis://127.0.0.1:{port}/0"


async def _wait_redis(url: str, proc: Proc) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"redis exited:\n{proc.tail()}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            await writer.drain()
            answer = await reader.read(7)
            writer.close()
            if answer.startswith(b"+PONG"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("redis did not start")


def _ceiling(run: Run, name: str) -> tuple[Proc, int]:
    port = free_port()
    config = run.run_dir / f"{name}.yaml"
    coordinator_config(config, port=port)
    proc = start(name, [sys.executable, "-m", "bench.ceiling", str(config)], run.run_dir)
    return proc, port


async def _parallel(run: Run, specs: list[tuple[dict[str, Any], str, int]]) -> dict[str, float]:
    parts = await asyncio.gather(
        *(asyncio.to_thread(_load, run, spec, name, pid) for spec, name, pid in specs)
    )
    combined = _combine(list(parts))
    # the parts ran at the same time: the rate is their sum over one wall-clock duration
    combined["rate"] = sum(p["ok"] / p["seconds"] for p in parts if p["seconds"])
    return combined


async def scaling_figures(run: Run) -> list[Figure]:
    sizes = run.sizes
    redis, redis_url = _redis(run.run_dir)
    procs: list[Proc | None] = [redis]
    try:
        await _wait_redis(redis_url, redis)
        on_redis = {"registry": {"provider": "redis", "redis_url": redis_url}}
        a, url_a = start_coordinator(run, "replica-a", on_redis)
        b, url_b = start_coordinator(run, "replica-b", on_redis)
        memory, url_m = start_coordinator(run, "coordinator-memory")
        procs += [a, b, memory]
        ids = [f"node-{i:05d}" for i in range(sizes.nodes)]

        began = time.monotonic()
        await register(url_m, ids)
        memory_rate = len(ids) / (time.monotonic() - began)
        began = time.monotonic()
        await register(url_a, ids)
        redis_rate = len(ids) / (time.monotonic() - began)
        kill_quietly(memory)

        bare_1, port_1 = _ceiling(run, "ceiling-1")
        bare_2, port_2 = _ceiling(run, "ceiling-2")
        procs += [bare_1, bare_2]
        await _wait_post(f"http://127.0.0.1:{port_1}/noop", bare_1)
        await _wait_post(f"http://127.0.0.1:{port_2}/noop", bare_2)
        base = {
            "method": "POST",
            "body": '{"status":"active"}',
            "connections": sizes.load_connections,
            "duration": sizes.load_seconds,
            "max_requests": 10_000_000,
        }
        paths = [f"/api/v1/nodes/{i}/heartbeat" for i in ids]

        def beats(url: str) -> dict[str, Any]:
            return {**base, "port": int(url.rsplit(":", 1)[1]), "paths": paths}

        def noops(port: int) -> dict[str, Any]:
            return {**base, "port": port, "paths": ["/noop"]}

        one_bare = await _parallel(run, [(noops(port_1), "load-bare-1", bare_1.pid)])
        one = await _parallel(run, [(beats(url_a), "load-redis-1", a.pid)])
        two_bare = await _parallel(
            run,
            [
                (noops(port_1), "load-bare-2a", bare_1.pid),
                (noops(port_2), "load-bare-2b", bare_2.pid),
            ],
        )
        two = await _parallel(
            run,
            [(beats(url_a), "load-redis-2a", a.pid), (beats(url_b), "load-redis-2b", b.pid)],
        )
        share_1 = 100 * one["rate"] / one_bare["rate"] if one_bare["rate"] else float("nan")
        share_2 = 100 * two["rate"] / two_bare["rate"] if two_bare["rate"] else float("nan")
        scaling = two["rate"] / one["rate"] if one["rate"] else float("nan")
        bare_scaling = two_bare["rate"] / one_bare["rate"] if one_bare["rate"] else float("nan")
        share_9 = 100 * redis_rate / memory_rate if memory_rate else float("nan")
        return [
            Figure(
                figure="8a. Heartbeats/s, one replica on redis vs one bare endpoint",
                value=share_1,
                unit="%",
                target=">= 25",
                met=share_1 >= 25,
                size=f"{sizes.nodes:,} nodes, {sizes.load_seconds:.0f} s",
                detail=f"{one['rate']:,.0f}/s vs {one_bare['rate']:,.0f}/s; errors "
                f"{one['errors']:.0f}; p99 {one['p99_ms']:.0f} ms; server CPU "
                f"{one['server_cpu']:.2f} vs {one_bare['server_cpu']:.2f} cores",
                extra={"redis": one, "bare": one_bare},
            ),
            Figure(
                figure="8b. Heartbeats/s, two replicas on one redis: scaling over one",
                value=scaling,
                unit="x",
                target="> 1",
                met=scaling > 1,
                size=f"{sizes.nodes:,} nodes, a load client each",
                detail=f"{two['rate']:,.0f}/s on two replicas ({share_2:.0f} % of two bare "
                f"endpoints, {two_bare['rate']:,.0f}/s); two bare endpoints scale "
                f"{bare_scaling:.2f}x over one on this machine; errors {two['errors']:.0f}",
                extra={"redis": two, "bare": two_bare},
            ),
            Figure(
                figure="9. Registration throughput: redis vs memory",
                value=share_9,
                unit="%",
                target=">= 50",
                met=share_9 >= 50,
                size=f"{sizes.nodes:,} nodes, 16 concurrent",
                detail=f"redis {redis_rate:,.0f} nodes/s, memory {memory_rate:,.0f} nodes/s",
                extra={"redis_rate": redis_rate, "memory_rate": memory_rate},
            ),
        ]
    finally:
        for proc in reversed(procs):
            kill_quietly(proc)
