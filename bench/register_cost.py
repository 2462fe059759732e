"""A measurement aid beside figure 9 (not a figure): what one registration costs, and whom.

``python -m bench.register_cost [--nodes 5000] [--registry memory|redis|both] [--rounds 2]``
starts a real ``lightd-coordinator start -c`` (the bench's config, and for ``redis`` a
``redis-server`` of its own on a free loopback port) and registers ``nodes`` new nodes with
figure 9's own load (``bench.figures.coordinator.register``: 16 concurrent httpx requests from
this process), then the same ids again (re-registrations). For each pass it prints the rate
and the CPU seconds per registration of the coordinator, of this process (the load client)
and of Redis, from ``/proc/<pid>/stat``: wall-clock rates move with the machine's load, CPU
per registration much less, so read the CPU columns when the load average is not near zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures.coordinator import register
from bench.procs import (
    Proc,
    coordinator_config,
    free_port,
    kill_quietly,
    start,
    venv_bin,
    wait_http,
)

__all__ = ["main"]

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _redis(run_dir: Path) -> tuple[Proc, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = start("redis", argv, run_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        )
        if done.stdout.strip() == "PONG":
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise SystemExit("redis did not start")


async def _pass(url: str, ids: list[str], pids: dict[str, int]) -> dict[str, float]:
    before = {name: _cpu(pid) for name, pid in pids.items()}
    client0 = time.process_time()
    began = time.monotonic()
    await register(url, ids)
    wall = time.monotonic() - began
    client = time.process_time() - client0
    used = {name: _cpu(pid) - before[name] for name, pid in pids.items()}
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
            extra = {"registry": {"provider": "redis", "redis_url": redis_url}}
        for attempt in range(rounds):
            port = free_port()
            config = run_dir / f"coordinator-{provider}-{attempt}.yaml"
            coordinator_config(config, port=port, extra=extra)
            argv = [venv_bin("lightd-coordinator"), "start", "-c", str(config)]
            coordinator = start(f"coordinator-{provider}-{attempt}", argv, run_dir)
            procs.append(coordinator)
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", coordinator)
            pids = {"server": coordinator.pid}
            if provider == "redis":
                pids["redis"] = procs[0].pid
            ids = [f"r{attempt}-node-{i:05d}" for i in range(nodes)]
            for kind in ("new", "again"):
                load = os.getloadavg()[0]
                row = await _pass(url, ids, pids)
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
    parser.add_argument("--registry", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=2, help="fresh coordinators per registry")
    args = parser.parse_args()
    providers = ["memory", "redis"] if args.registry == "both" else [args.registry]
    with tempfile.TemporaryDirectory(prefix="register-cost-") as tmp:
        for provider in providers:
            asyncio.run(_measure(provider, args.nodes, args.rounds, Path(tmp)))


if __name__ == "__main__":
    main()
