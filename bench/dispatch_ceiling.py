"""A measurement aid beside figure 5 (not a figure): the floor of one more HTTP hop.

Figure 5 is the time a command through the coordinator adds over the same command sent
straight to the agent. Whatever the coordinator does, it pays one HTTP request served (the
operator's, by uvicorn) and one HTTP request made (its own, to the agent, with httpx). This
script measures that floor with the chosen packages and nothing else, side by side with the
real coordinator:

``python -m bench.dispatch_ceiling [--rounds 400]`` starts, each in its own process,

- ``agent``: a bare Starlette app under uvicorn answering ``POST /commands`` with a
  ``CommandResult`` for the command it got (a stand-in for the agent: its own time is the same
  on every path, so it cancels out of the differences);
- ``proxy``: a bare Starlette app under uvicorn whose ``POST /commands`` reads the body and
  posts it, with one kept-alive ``httpx.AsyncClient``, to ``agent``, and answers what it got:
  one served request plus one made request, no auth, no validation, no storage;
- ``lightd-coordinator`` as figure 5 runs it (memory registry, ``auth.agent_token`` set, the
  operator API open), with the stand-in agent registered as a node with a dispatch key.

Then ``--rounds`` times, in a rotating order, one ``container``/``status`` command each way:
straight to ``agent``, through ``proxy``, through the coordinator. It prints the p50 of each
path, what ``proxy`` and the coordinator add over straight at p50, and the CPU each process
spent per request (``bench.procs.cpu_seconds``): wall times move with the machine's load, CPU per
request much less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.procs import cpu_seconds, free_port, venv_bin

__all__ = ["main"]

NODE = "ceiling-node"
COMMAND = {"type": "container", "action": "status", "params": {"server": "c0"}}


# -- the two bare servers ------------------------------------------------------------------


def agent_app() -> Starlette:
    async def commands(request: Request) -> Response:
        body = json.loads(await request.body())
        answer = {
            "id": body["id"],
            "node_id": body.get("node_id", NODE),
            "status": "success",
            "output": "running",
        }
        return Response(json.dumps(answer), media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/commands", commands, methods=["POST"]), Route("/health", health)]
    )


def proxy_app(agent_url: str) -> Starlette:
    client = httpx.AsyncClient(base_url=agent_url, timeout=30)

    async def commands(request: Request) -> Response:
        answer = await client.post(
            "/commands",
            content=await request.body(),
            headers={"Content-Type": "application/json"},
        )
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/commands", commands, methods=["POST"]), Route("/health", health)]
    )


def _serve(kind: str, port: int, agent_url: str) -> None:
    app = agent_app() if kind == "agent" else proxy_app(agent_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- processes -----------------------------------------------------------------------------


def _wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within 30 s")


@contextlib.contextmanager
def _processes(workdir: Path) -> Iterator[dict[str, Any]]:
    agent_port, proxy_port, coordinator_port = free_port(), free_port(), free_port()
    agent_url = f"http://127.0.0.1:{agent_port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        me = [sys.executable, "-m", "bench.dispatch_ceiling", "--serve"]
        agent = subprocess.Popen([*me, "agent", str(agent_port), agent_url])
        procs.append(agent)
        proxy = subprocess.Popen([*me, "proxy", str(proxy_port), agent_url])
        procs.append(proxy)
        agent_token = "lightd_" + secrets.token_hex(16)
        config = workdir / "coordinator.yaml"
        config.write_text(
            yaml.safe_dump(
                {  # figure 5's coordinator (bench.procs.coordinator_config and its extra)
                    "server": {"host": "127.0.0.1", "port": coordinator_port},
                    "registry": {"provider": "memory"},
                    "logging": {"level": "info", "format": "json", "output": "stdout"},
                    "auth": {"agent_token": agent_token},
                }
            )
        )
        log = (workdir / "coordinator.log").open("wb")
        coordinator = subprocess.Popen(
            [venv_bin("lightd-coordinator"), "start", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(coordinator)
        coordinator_url = f"http://127.0.0.1:{coordinator_port}"
        _wait(f"{agent_url}/health", agent, "the stand-in agent")
        _wait(f"http://127.0.0.1:{proxy_port}/health", proxy, "the proxy")
        _wait(f"{coordinator_url}/health", coordinator, "the coordinator")
        registered = httpx.post(
            f"{coordinator_url}/api/v1/nodes",
            json={
                "id": NODE,
                "address": "127.0.0.1",
                "port": agent_port,
                "dispatch_key": secrets.token_hex(32),
            },
            headers={"Authorization": f"Bearer {agent_token}"},
            timeout=10,
        )
        if registered.status_code not in (200, 201):
            raise RuntimeError(f"registering the stand-in agent: {registered.text}")
        yield {
            "agent": (agent_url, agent.pid),
            "proxy": (f"http://127.0.0.1:{proxy_port}", proxy.pid),
            "coordinator": (coordinator_url, coordinator.pid),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


# -- the measurement -----------------------------------------------------------------------


async def _measure(where: dict[str, Any], rounds: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"straight": [], "proxy": [], "coordinator": []}
    async with (
        httpx.AsyncClient(base_url=where["agent"][0], timeout=30) as straight,
        httpx.AsyncClient(base_url=where["proxy"][0], timeout=30) as proxy,
        httpx.AsyncClient(base_url=where["coordinator"][0], timeout=30) as coordinator,
    ):

        async def direct(client: httpx.AsyncClient) -> httpx.Response:
            body = {"id": f"cmd_{uuid.uuid4().hex}_{NODE}", "node_id": NODE, **COMMAND}
            return await client.post("/commands", json=body)

        async def via_coordinator(client: httpx.AsyncClient) -> httpx.Response:
            return await client.post(f"/api/v1/nodes/{NODE}/commands", json=COMMAND)

        paths: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "straight": lambda: direct(straight),
            "proxy": lambda: direct(proxy),
            "coordinator": lambda: via_coordinator(coordinator),
        }
        for send in paths.values():  # warm every connection up
            (await send()).raise_for_status()
        cpu0 = {name: cpu_seconds(pid) for name, (_, pid) in where.items()}
        order = list(paths)
        for k in range(rounds):
            for name in order[k % 3 :] + order[: k % 3]:
                began = time.perf_counter()
                response = await paths[name]()
                took = time.perf_counter() - began
                if response.status_code != 200 or response.json().get("status") != "success":
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
                times[name].append(took * 1000)
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, (_, pid) in where.items()}
    p50 = {name: statistics.median(samples) for name, samples in times.items()}
    # the stand-in agent serves every path once per round: 3 requests a round
    return {
        "rounds": rounds,
        "load_average_1m": os.getloadavg()[0],
        "p50_ms": {name: round(value, 3) for name, value in p50.items()},
        "added_p50_ms": {
            "proxy": round(p50["proxy"] - p50["straight"], 3),
            "coordinator": round(p50["coordinator"] - p50["straight"], 3),
        },
        "cpu_us_per_request": {
            "agent": round(cpu["agent"] / (3 * rounds) * 1e6),
            "proxy": round(cpu["proxy"] / rounds * 1e6),
            "coordinator": round(cpu["coordinator"] / rounds * 1e6),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch_ceiling", description=__doc__)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "AGENT_URL"))
    args = parser.parse_args(argv)
    if args.serve:
        kind, port, agent_url = args.serve
        _serve(kind, int(port), agent_url)
        return 0
    print(f"==> {args.rounds} rounds: straight, through a bare proxy, through the coordinator")
    with tempfile.TemporaryDirectory(prefix="lightd-dispatch-ceiling-") as tmp:
        with _processes(Path(tmp)) as where:
            result = asyncio.run(_measure(where, args.rounds))
    p50, added, cpu = result["p50_ms"], result["added_p50_ms"], result["cpu_us_per_request"]
    print(f"   load average {result['load_average_1m']:.2f}")
    print(f"   {'path':12s} {'p50 ms':>8s} {'added p50 ms':>13s} {'CPU/request us':>15s}")
    print(f"   {'straight':12s} {p50['straight']:8.2f} {'':>13s} {cpu['agent']:15d}")
    print(f"   {'proxy':12s} {p50['proxy']:8.2f} {added['proxy']:13.2f} {cpu['proxy']:15d}")
    print(
        f"   {'coordinator':12s} {p50['coordinator']:8.2f} {added['coordinator']:13.2f} "
        f"{cpu['coordinator']:15d}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
