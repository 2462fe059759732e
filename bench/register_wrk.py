"""A measurement aid beside figure 9 (not a figure): the coordinator's own registration rate.

Figure 9's load client (httpx, 16 concurrent requests from one Python process) spends about
1.2 ms of CPU per request; ``bench.register_cost --registry ceiling`` shows it cannot send more
than about 800 registrations a second on this machine even to a server that does nothing. So
figure 9 measures its client, not the coordinator, whenever the coordinator is faster than
that. This aid sends the same registrations with ``wrk`` (a C load generator, Debian's
``wrk``: its own cost per request is a few microseconds) so that the coordinator is the limit:

``python -m bench.register_wrk [--registry memory|redis|both] [--seconds 10]
[--connections 16] [--rounds 2]`` starts a real ``lightd-coordinator start -c`` (the bench's
config; for ``redis`` a ``redis-server`` of its own, emptied before each round) and, for
``--seconds``, registers new nodes (figure 9's body, a new id per request) over
``--connections`` kept-alive connections. Each round prints the rate, the coordinator's CPU
seconds per registration (``bench.procs.cpu_seconds``) and its share of one core; the last line
is the whole result as JSON. Any answer other than ``2xx`` fails the run, and so does a
count of stored nodes (``GET /health``) that is not the registrations answered (each a new
node), give or take the requests still in flight when wrk stopped (one per connection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures.coordinator import registration_body
from bench.figures.scaling import _redis, _wait_redis
from bench.procs import Proc, cpu_seconds, kill_quietly, start_coordinator, wait_http

__all__ = ["main"]

_MARK = "lightd-wrk-id"
"""Where the Lua script puts each request's node id in figure 9's body."""

_SCRIPT = """
local prefix = "w"
local counter = 0
local template = [[%s]]
init = function(args) prefix = args[1] end
request = function()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local body = string.gsub(template, "%s", id)
  return wrk.format("POST", "/api/v1/nodes", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %%d, "micros": %%d, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"p50_ms": %%.3f, "p99_ms": %%.3f}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _script(directory: Path) -> Path:
    body = json.dumps(registration_body(_MARK), separators=(",", ":"))
    # the rack label is the id's last two characters in figure 9; any two will do here
    path = directory / "register.lua"
    path.write_text(_SCRIPT % (body, _MARK.replace("-", "%-")))
    return path


def _wrk(url: str, script: Path, seconds: int, connections: int, prefix: str) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    done = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url, "--", prefix],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"wrk saw failed registrations: {result}\n{done.stdout}")
    return result


def _flush_redis(url: str) -> None:
    import redis  # the coordinator's own dependency

    redis.Redis.from_url(url).flushall()


async def _measure(
    provider: str, seconds: int, connections: int, rounds: int, run_dir: Path
) -> list[dict[str, Any]]:
    procs: list[Proc] = []
    rows: list[dict[str, Any]] = []
    script = _script(run_dir)
    try:
        extra: dict[str, Any] = {}
        redis_url = ""
        if provider == "redis":
            redis, redis_url = _redis(run_dir)
            procs.append(redis)
            await _wait_redis(redis_url, redis)
            extra = {"registry": {"provider": "redis", "redis_url": redis_url}}
        for attempt in range(rounds):
            if redis_url:
                _flush_redis(redis_url)
            coordinator, url = start_coordinator(
                run_dir, f"wrk-coordinator-{provider}-{attempt}", extra
            )
            procs.append(coordinator)
            load = os.getloadavg()[0]
            cpu0 = cpu_seconds(coordinator.pid)
            began = time.monotonic()
            result = await asyncio.to_thread(
                _wrk, url, script, seconds, connections, f"{provider}{attempt}-{time.time_ns()}"
            )
            wall = time.monotonic() - began
            cpu = cpu_seconds(coordinator.pid) - cpu0
            # every answer was 2xx; a new node (201) for each, not 200 (an id sent twice)? wrk
            # stops at its deadline with up to one request per connection still unanswered,
            # which the coordinator may have stored (the rate counts only answered ones)
            stored = int(wait_http(f"{url}/health", coordinator)["total_nodes"])
            if not result["requests"] <= stored <= result["requests"] + connections:
                raise RuntimeError(
                    f"{result['requests']} registrations answered over {connections} "
                    f"connections, but {stored} nodes stored"
                )
            kill_quietly(coordinator)
            procs.remove(coordinator)
            rate = result["requests"] / (result["micros"] / 1e6)
            row = {
                "registry": provider,
                "round": attempt,
                "registrations": result["requests"],
                "rate": round(rate, 1),
                "server_us_per_registration": round(cpu / result["requests"] * 1e6, 1),
                "server_cores": round(cpu / wall, 2),
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "load_average_1m": round(load, 2),
            }
            rows.append(row)
            print(
                f"{provider:6} round {attempt}  {row['registrations']:,} registrations  "
                f"rate {rate:,.0f}/s  server {row['server_us_per_registration']:,.0f} us each, "
                f"{row['server_cores']:.2f} cores  p50 {row['p50_ms']:.1f} / p99 "
                f"{row['p99_ms']:.1f} ms  (load {load:.2f})",
                flush=True,
            )
    finally:
        for proc in reversed(procs):
            kill_quietly(proc)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="fresh coordinators per registry")
    args = parser.parse_args()
    providers = ["memory", "redis"] if args.registry == "both" else [args.registry]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="register-wrk-") as tmp:
        for provider in providers:
            rows += asyncio.run(
                _measure(provider, args.seconds, args.connections, args.rounds, Path(tmp))
            )
    print(json.dumps({"rounds": rows}))


if __name__ == "__main__":
    main()
