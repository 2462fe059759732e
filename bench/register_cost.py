"""A measurement aid beside figure 9 (not a figure): what one registration costs, and whom.

``python -m bench.register_cost [--nodes 5000] [--registry memory|redis|both|ceiling]
[--rounds 2]`` starts a real ``lightd-coordinator start -c`` (the bench's config, and for
``redis`` a ``redis-server`` of its own on a free loopback port) and registers ``nodes`` new
nodes with figure 9's own load (``bench.figures.coordinator.register``: 16 concurrent httpx
requests from this process), then the same ids again (re-registrations). For each pass it
prints the rate and the CPU seconds per registration of the coordinator, of this process (the
load client) and of Redis, by ``bench.procs.cpu_seconds``: wall-clock rates move with the
machine's load, CPU per registration much less, so read the CPU columns when the load
average is not near zero.

``--registry ceiling`` sends the same bodies the same way (16 concurrent, one httpx client) to
``bench.ceiling``'s bare ``POST /noop`` instead: what the load client costs per request when
the server does no work, i.e. the most figure 9's load client can send on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures.coordinator import _wait_post, register
from bench.figures.scaling import _redis, _wait_redis
from bench.procs import (
    Proc,
    coordinator_config,
    cpu_seconds,
    free_port,
    kill_quietly,
    start,
    venv_bin,
    wait_http,
)

__all__ = ["main"]

TICKS = os.sysconf("SC_CLK_TCK")


async def _pass(
    url: str, ids: list[str], pids: dict[str, int], *, bare: bool = False
) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client0 = time.process_time()
    began = time.monotonic()
    await register(url, ids, path="/noop" if bare else "/api/v1/nodes")
    wall = time.monotonic() - began
    client = time.process_time() - client0
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    per = 1e6 / len(ids)
    result = {"rate": len(ids) / wall, "client_us": client * per}
    result.update({f"{name}_us": seconds * per for name, seconds in used.items()})
    return result


async def _measure(provider: str, nodes: int, rounds: int, run_dir: Path) -> None:
    procs: list[Proc] = []
    try:
        extra: dict[str, Any] = {}
        if provider == "redis":
            redis, redis_url = _redis(run_dir)
            procs.append(redis)
            await _wait_redis(redis_url, redis)
            extra = {"registry": {"provider": "redis", "redis_url": redis_url}}
        for attempt in range(rounds):
            port = free_port()
            config = run_dir / f"coordinator-{provider}-{attempt}.yaml"
            coordinator_config(config, port=port, extra=extra)
            argv = [venv_bin("lightd-coordinator"), "start", "-c", str(config)]
            if provider == "ceiling":
                argv = [sys.executable, "-m", "bench.ceiling", str(config)]
            coordinator = start(f"coordinator-{provider}-{attempt}", argv, run_dir)
            procs.append(coordinator)
            url = f"http://127.0.0.1:{port}"
            if provider == "ceiling":
                await _wait_post(f"{url}/noop", coordinator)
            else:
                wait_http(f"{url}/health", coordinator)
            pids = {"server": coordinator.pid}
            if provider == "redis":
                pids["redis"] = procs[0].pid
            ids = [f"r{attempt}-node-{i:05d}" for i in range(nodes)]
            for kind in ("new", "again"):
                load = os.getloadavg()[0]
                row = await _pass(url, ids, pids, bare=provider == "ceiling")
                cells = "  ".join(f"{key} {value:,.0f}" for key, value in row.items())
                print(f"{provider:6} {kind:5} {nodes} nodes  {cells}  (load {load:.2f})")
            kill_quietly(coordinator)
            procs.remove(coordinator)
    finally:
        for proc in reversed(procs):
            kill_quietly(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument(
        "--registry", choices=["memory", "redis", "both", "ceiling"], default="both"
    )
    parser.add_argument("--rounds", type=int, default=2, help="fresh coordinators per registry")
    args = parser.parse_args()
    providers = ["memory", "redis"] if args.registry == "both" else [args.registry]
    with tempfile.TemporaryDirectory(prefix="register-cost-") as tmp:
        for provider in providers:
            asyncio.run(_measure(provider, args.nodes, args.rounds, Path(tmp)))


if __name__ == "__main__":
    main()
