"""Figures 2b and 5: an agent joined to a coordinator (issue 6), both real processes.

Set-up: ``lightd-coordinator start -c`` (memory registry, ``auth.agent_token`` set); an agent
with ``coordinator.enabled`` (it registers, heartbeats and takes ``POST /commands``) and with a
second remote, the coordinator's ``/api/v1/remote/{node}``, so its lifecycle updates become
``server_update`` events on ``/ws``. The agent's ``coordinator.url`` goes through the
enrolment tap (:mod:`bench.tap`) only so that the benchmark learns the agent's dispatch key.

2b. Docker's event (``die`` after ``docker kill``, ``start`` after ``POST /start``) to an SSE
    client on the coordinator's ``/ws`` receiving the ``server_update``.
5.  ``POST /api/v1/nodes/{node}/commands`` (``container``/``status``) through the coordinator,
    against the same ``POST /commands`` sent straight to the agent with a token signed the way
    the coordinator signs it (outside the timed region); alternating, one keep-alive client
    each. The added time is the difference of the two sides' percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from typing import Any

import httpx

from bench.agent_rig import AgentRig
from bench.context import Run
from bench.figures.agent import delivery_floor, docker_kill
from bench.figures.coordinator import start_coordinator
from bench.procs import Proc, free_port, kill_quietly, start, wait_http
from bench.profile import Profiler
from bench.report import Figure
from bench.stats import percentile, summary
from lightd_coordinator.security import NodeKeySigner
from lightd_shared.tokens import generate_token

__all__ = ["cluster_figures"]


class _Updates:
    """``server_update`` events from the coordinator's ``/ws``: (server, status, time_ns)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.connected = asyncio.Event()

    async def follow(self, url: str) -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", f"{url}/ws", params={"types": "server_update"}) as response,
        ):
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                arrived = time.time_ns()
                envelope = json.loads(line[5:])
                if envelope.get("type") == "initial_state":
                    self.connected.set()
                    continue
                data = envelope.get("data") or {}
                update = data.get("update") or {}
                self.seen.append(
                    (str(data.get("server")), str(update.get("status") or "error"), arrived)
                )

    async def wait(self, server: str, status: str, since: int, timeout: float) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(since, len(self.seen)):
                who, what, when = self.seen[index]
                if who == server and what == status:
                    return when, index + 1
            await asyncio.sleep(0.005)
        raise TimeoutError(f"no server_update {status} for {server} on /ws within {timeout}s")


async def _figure_2b(rig: AgentRig, run: Run, url: str, servers: list[str]) -> Figure:
    assert rig.client is not None and rig.docker_events is not None
    updates = _Updates()
    follower = asyncio.create_task(updates.follow(url))
    samples: list[float] = []
    floor: list[float] = []  # Docker's event -> a bare SDK listener in this process
    try:
        await asyncio.wait_for(updates.connected.wait(), 10)
        since = 0
        for k in range(run.sizes.event_cycles):
            if run.remaining() < 0:
                run.notes.append(f"figure 2b stopped at cycle {k}: time budget spent")
                break
            server = servers[k % len(servers)]
            mark = rig.docker_events.count()
            await asyncio.to_thread(docker_kill, run.docker, f"lightd-{rig.node_id}-{server}")
            arrived, since = await updates.wait(server, "crashed", since, 10)
            died = rig.docker_events.delivery(server, "die", mark)
            if died is not None:
                samples.append((arrived - died[0]) / 1e6)
                floor.append((died[1] - died[0]) / 1e6)
            mark = rig.docker_events.count()
            (await rig.client.post(f"/containers/{server}/start")).raise_for_status()
            arrived, since = await updates.wait(server, "running", since, 10)
            started = rig.docker_events.delivery(server, "start", mark)
            if started is not None:
                samples.append((arrived - started[0]) / 1e6)
                floor.append((started[1] - started[0]) / 1e6)
    finally:
        follower.cancel()
        with contextlib.suppress(BaseException):
            await follower
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return Figure(
        figure="2b. Event latency: Docker event -> coordinator /ws client (p99)",
        value=p99,
        unit="ms",
        target="< 50",
        met=p99 < 50,
        size=f"{len(samples)} events (die and start)",
        detail=(
            f"p50 {p50:.1f} ms, max {max(samples, default=float('nan')):.1f} ms; via the "
            f"agent's remote sync to /api/v1/remote/{{node}}, then SSE; {delivery_floor(floor)}"
        ),
        extra={"ms": summary(samples), "docker_delivery_ms": summary(floor)},
    )


async def _figure_5(
    rig: AgentRig, run: Run, url: str, key: str, server: str, coordinator: Proc
) -> Figure:
    node = rig.node_id
    signer = NodeKeySigner(expires_in=60)
    command = {"type": "container", "action": "status", "params": {"server": server}}
    via: list[float] = []
    direct: list[float] = []
    failures: list[str] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as through,
        httpx.AsyncClient(base_url=rig.url, timeout=30) as straight,
    ):

        async def once_via() -> None:
            began = time.perf_counter()
            response = await through.post(f"/api/v1/nodes/{node}/commands", json=command)
            took = time.perf_counter() - began
            body = response.json() if response.content else {}
            if response.status_code != 200 or body.get("status") != "success":
                failures.append(f"via: {response.status_code} {response.text[:200]}")
            else:
                via.append(took * 1000)

        async def once_direct() -> None:
            command_id = f"cmd_bench{uuid.uuid4().hex}_{node}"
            headers = {
                "Authorization": signer.authorization(node, command_id, key),
                "Idempotency-Key": command_id,
            }
            body = {"id": command_id, "node_id": node, **command}
            began = time.perf_counter()
            response = await straight.post("/commands", json=body, headers=headers)
            took = time.perf_counter() - began
            answer = response.json() if response.content else {}
            if response.status_code != 200 or answer.get("status") != "success":
                failures.append(f"direct: {response.status_code} {response.text[:200]}")
            else:
                direct.append(took * 1000)

        await once_via()  # warm both connections up
        await once_direct()
        via.clear()
        direct.clear()
        with Profiler(
            coordinator.pid, run.run_dir / "profile-5-coordinator.raw", run.profile
        ) as prof:
            for k in range(run.sizes.dispatches):
                if run.remaining() < 0:
                    run.notes.append(f"figure 5 stopped at {k} dispatches: time budget spent")
                    break
                first, second = (once_via, once_direct) if k % 2 == 0 else (once_direct, once_via)
                await first()
                await second()
                if len(failures) > 5:
                    raise RuntimeError("commands failed: " + "; ".join(failures[:3]))
    added50 = percentile(via, 50) - percentile(direct, 50)
    added99 = percentile(via, 99) - percentile(direct, 99)
    return Figure(
        figure="5. Dispatch overhead: via coordinator minus straight to agent (p50)",
        value=added50,
        unit="ms",
        target="<= 3",
        met=added50 <= 3,
        size=f"{len(via)} commands each side",
        detail=(
            f"added p99 {added99:.1f} ms; via coordinator p50 {percentile(via, 50):.1f} / p99 "
            f"{percentile(via, 99):.1f} ms, straight p50 {percentile(direct, 50):.1f} / p99 "
            f"{percentile(direct, 99):.1f} ms; container/status commands; "
            f"{len(failures)} failed"
        ),
        extra={"via_ms": summary(via), "direct_ms": summary(direct), "profile": prof.summary},
    )


async def _dispatch_key(tap_url: str, node: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=tap_url, timeout=5) as client:
        while time.monotonic() < deadline:
            key = (await client.get("/__tap/key", params={"node": node})).json().get("key")
            if key:
                return str(key)
            await asyncio.sleep(0.1)
    raise TimeoutError(f"agent {node} did not register with the coordinator within {timeout}s")


async def cluster_figures(run: Run) -> list[Figure]:
    agent_token = generate_token()
    coordinator, url = start_coordinator(
        run, "coordinator-cluster", extra={"auth": {"agent_token": agent_token}}
    )
    tap: Proc | None = None
    try:
        tap_port = free_port()
        tap = start("tap", [sys.executable, "-m", "bench.tap", str(tap_port), url], run.run_dir)
        tap_url = f"http://127.0.0.1:{tap_port}"
        await asyncio.to_thread(wait_http, f"{tap_url}/health", tap)
        node_name = "cluster"
        node = f"bench-{run.run_id}-{node_name}"
        extra: dict[str, Any] = {
            "coordinator": {
                "enabled": True,
                "url": tap_url,
                "token": agent_token,
                "advertise_address": "127.0.0.1",
            },
            "remotes": [
                {
                    "name": "coordinator",
                    "enabled": True,
                    "url": f"{url}/api/v1/remote/{node}",
                    "token": agent_token,
                    "events": "all",
                    "timeout": "2s",
                    "health_interval": "1s",
                    "retry_max_delay": "1s",
                }
            ],
        }
        async with AgentRig(run, node_name, extra) as rig:
            assert rig.client is not None and rig.node_id == node
            key = await _dispatch_key(tap_url, node)
            servers = ["c0", "c1"]
            for server in servers:
                since = len(rig.events.seen)
                response = await rig.client.post("/containers", json=rig.spec(server))
                response.raise_for_status()
                rig.servers.append(server)
                await rig.events.wait(server, "Running", since, timeout=60)
            figures = [await _figure_2b(rig, run, url, servers)]
            figures.append(await _figure_5(rig, run, url, key, servers[0], coordinator))
        return figures
    finally:
        kill_quietly(tap)
        kill_quietly(coordinator)
