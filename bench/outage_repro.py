"""``python -m bench.outage_repro [--servers N] [--actions K] [--rounds R] [--probes P]``.

Figure 6's outage, repeated and looked at closely: a real agent (``lightd run -c``) with
``N`` servers, its remote stopped, ``N`` concurrent kill/start loops of ``K`` actions each,
and (``--probes``) ``P`` concurrent loops of ``POST /containers/<unknown id>/start`` that
pass the lifecycle gate and then answer 404. Every answer that is not the expected one is
printed with its body, per round. Runs under the bench lock like every benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
import uuid
from pathlib import Path

import docker

from bench.agent_rig import AgentRig, cleanup_docker
from bench.context import Run, Sizes


async def _loop(rig: AgentRig, server: str, actions: int, odd: list[str]) -> None:
    assert rig.client is not None
    for k in range(actions):
        action = "kill" if k % 2 == 0 else "start"
        response = await rig.client.post(f"/containers/{server}/{action}")
        if response.status_code != 200:
            odd.append(f"{action} {server}: {response.status_code} {response.text[:300]}")


async def _probe(rig: AgentRig, stop: asyncio.Event, odd: list[str], counts: list[int]) -> None:
    assert rig.client is not None
    while not stop.is_set():
        response = await rig.client.post("/containers/no-such-server/start")
        counts[0] += 1
        if response.status_code != 404:
            odd.append(f"probe: {response.status_code} {response.text[:300]}")


async def main(args: argparse.Namespace) -> int:
    client = docker.from_env(timeout=60)
    run_dir = Path("bench/results") / f"repro-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(
        sizes=Sizes.tiny(),
        mode="repro",
        run_dir=run_dir,
        run_id=uuid.uuid4().hex[:8],
        profile=False,
        docker=client,
        deadline=time.monotonic() + 3600,
    )
    total_odd = 0
    try:
        async with AgentRig(run) as rig:
            assert rig.client is not None
            since = len(rig.events.seen)
            for i in range(args.servers):
                response = await rig.client.post("/containers", json=rig.spec(f"s{i}"))
                response.raise_for_status()
                rig.servers.append(f"s{i}")
            for server in rig.servers:
                await rig.events.wait(server, "Running", since, timeout=120)
            rig.stop_recorder()
            for r in range(args.rounds):
                odd: list[str] = []
                counts = [0]
                stop = asyncio.Event()
                probes = [
                    asyncio.create_task(_probe(rig, stop, odd, counts)) for _ in range(args.probes)
                ]
                began = time.monotonic()
                await asyncio.gather(*(_loop(rig, s, args.actions, odd) for s in rig.servers))
                stop.set()
                await asyncio.gather(*probes)
                status = await rig.remote_status()
                kinds = collections.Counter(line.split(":")[0].split(" ")[0] for line in odd)
                print(
                    f"round {r}: {args.servers * args.actions} actions, {counts[0]} probes in "
                    f"{time.monotonic() - began:.1f} s; unexpected answers {len(odd)} "
                    f"{dict(kinds)}; outbox {status.get('outbox_depth')}",
                    flush=True,
                )
                for line in odd[:5]:
                    print("   ", line, flush=True)
                total_odd += len(odd)
    finally:
        cleanup_docker(client, run.run_id)
        client.close()
    print(f"total unexpected answers: {total_odd}; logs in {run_dir}")
    return 1 if total_odd else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.outage_repro", description=__doc__)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--probes", type=int, default=0)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
