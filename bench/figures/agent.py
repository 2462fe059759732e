"""Figures 1, 2 (remote half), 6 and 7 (agent half): one real agent, measured in sequence.

1. create + start + ready of each server through the agent (``POST /containers`` until the
   agent's own ``Running`` event) against the same container work done straight with the
   Docker SDK (image check, bound volume, create with the same labels and mount, start, inspect),
   alternating which goes first so that drift hits both sides alike;
7. the agent's RSS once it manages those servers and has been idle for two seconds, and
   where it is (:func:`bench.procs.rss_parts`: heap, stacks, arenas, file mappings);
2. from Docker's event (``timeNano`` of ``die`` after a ``docker kill`` from outside, and of
   ``start`` after ``POST /start``) to the recording remote receiving the ``/update``
   (``crashed``, ``running``);
6. the remote stopped, lifecycle actions queue ``outbox_updates`` updates, the remote comes
   back: time to drain, and updates lost (the state changes the answers reported and the
   sequence numbers the agent gave, against the updates received: :mod:`bench.outage`),
   and every refused action with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import docker

from bench.agent_rig import AgentRig
from bench.context import IMAGE, LABEL, Run
from bench.outage import Answer, count_outage, unexplained
from bench.procs import rss_mib, rss_parts, rss_summary
from bench.profile import Profiler
from bench.report import Figure
from bench.stats import percentile, summary

__all__ = ["agent_figures", "delivery_floor", "docker_kill"]


def _direct_once(
    client: docker.DockerClient, run: Run, index: int, steps: dict[str, list[float]]
) -> float:
    """The container work of one server, straight through the SDK; seconds (and per step)."""
    name = f"lightd-bench-direct-{run.run_id}-{index}"
    labels = {LABEL: run.run_id, "lightd.server": f"d{index}", "lightd.role": "server"}
    began = time.monotonic()
    client.images.get(IMAGE)
    # The agent's own volume: a local volume bound to a directory under its storage.
    directory = (run.run_dir / "direct-volumes" / name).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    volume = client.volumes.create(
        name=f"{name}-data",
        labels=labels,
        driver="local",
        driver_opts={"type": "none", "o": "bind", "device": str(directory)},
    )
    prepared = time.monotonic()
    # The same keyword arguments as the agent's DockerBackend.create_server.
    options: dict[str, Any] = {
        "command": ["sleep", "86400"],
        "name": name,
        "labels": labels,
        "environment": {},
        "ports": {},
        "volumes": {volume.name: {"bind": "/data", "mode": "rw"}},
        "restart_policy": {"Name": "no"},
        "privileged": False,
        "network_mode": "bridge",
    }
    container = client.containers.create(IMAGE, **options)
    created = time.monotonic()
    container.start()
    container.reload()
    if not container.attrs["State"]["Running"]:
        raise RuntimeError(f"direct container {name} is not running")
    done = time.monotonic()
    steps["image + volume"].append((prepared - began) * 1000)
    steps["create"].append((created - prepared) * 1000)
    steps["start + inspect"].append((done - created) * 1000)
    return done - began


def _direct_remove(client: docker.DockerClient, run: Run, index: int) -> None:
    name = f"lightd-bench-direct-{run.run_id}-{index}"
    with contextlib.suppress(docker.errors.APIError):
        client.containers.get(name).remove(force=True)
    with contextlib.suppress(docker.errors.APIError):
        client.volumes.get(f"{name}-data").remove(force=True)


STEPS = ("image + volume", "create", "start + inspect")


async def _agent_once(rig: AgentRig, server: str, steps: dict[str, list[float]]) -> float:
    """POST /containers until the agent's Running event; seconds (and per step, by event)."""
    assert rig.client is not None
    since = len(rig.events.seen)
    began = time.monotonic()
    response = await rig.client.post("/containers", json=rig.spec(server))
    answered = time.monotonic()
    if response.status_code != 202:
        raise RuntimeError(f"POST /containers answered {response.status_code}: {response.text}")
    rig.servers.append(server)
    ran = await rig.events.wait(server, "Running", since, timeout=60)
    at = {kind: when for who, kind, when in rig.events.seen[since:] if who == server}
    if {"Started", "CreatingContainer", "Ready"} <= set(at):
        steps["answer (202)"].append((answered - began) * 1000)
        steps["image + volume"].append((at["CreatingContainer"] - began) * 1000)
        steps["create"].append((at["Ready"] - at["CreatingContainer"]) * 1000)
        steps["start + inspect"].append((ran - at["Ready"]) * 1000)
    return ran - began


async def figure_1(rig: AgentRig, run: Run) -> list[Figure]:
    n = run.sizes.servers
    agent: list[float] = []
    direct: list[float] = []
    agent_steps: dict[str, list[float]] = {k: [] for k in ("answer (202)", *STEPS)}
    direct_steps: dict[str, list[float]] = {k: [] for k in STEPS}
    with Profiler(
        rig.agent.pid if rig.agent else 0,
        run.run_dir / "profile-1-agent.raw",
        run.profile,
        idle=True,
    ) as prof:
        for i in range(n):
            if run.remaining() < 0:
                run.notes.append(f"figure 1 stopped at {i} of {n} servers: time budget spent")
                break
            order = ("agent", "direct") if i % 2 == 0 else ("direct", "agent")
            for side in order:
                if side == "agent":
                    agent.append(await _agent_once(rig, f"s{i}", agent_steps) * 1000)
                else:
                    direct.append(
                        await asyncio.to_thread(_direct_once, run.docker, run, i, direct_steps)
                        * 1000
                    )
    for i in range(len(direct)):
        await asyncio.to_thread(_direct_remove, run.docker, run, i)
    a50, a95 = percentile(agent, 50), percentile(agent, 95)
    d50, d95 = percentile(direct, 50), percentile(direct, 95)
    ratio = a50 / d50
    where = "; ".join(
        f"{step} {percentile(agent_steps[step], 50):.0f} vs "
        f"{percentile(direct_steps[step], 50):.0f}"
        for step in STEPS
    )
    return [
        Figure(
            figure="1. Agent overhead: create+start+ready, agent/direct (p50 ratio)",
            value=ratio,
            unit="x",
            target="<= 1.10",
            met=ratio <= 1.10,
            size=f"{len(agent)} servers each side",
            detail=(
                f"agent p50 {a50:.0f} ms, p95 {a95:.0f} ms; docker SDK p50 {d50:.0f} ms, "
                f"p95 {d95:.0f} ms; p95 ratio {a95 / d95:.2f}; p50 by step, agent vs SDK "
                f"(ms): {where}"
            ),
            extra={
                "agent_ms": summary(agent),
                "direct_ms": summary(direct),
                "agent_steps_ms": {k: summary(v) for k, v in agent_steps.items()},
                "direct_steps_ms": {k: summary(v) for k, v in direct_steps.items()},
                "profile": prof.summary,
            },
        )
    ]


async def figure_7_agent(rig: AgentRig, run: Run) -> Figure:
    await asyncio.sleep(2)
    assert rig.agent is not None
    rss = rss_mib(rig.agent.pid)
    parts = rss_parts(rig.agent.pid)  # read right after: where that RSS is (not the value)
    return Figure(
        figure="7a. Footprint: RSS of an idle agent",
        value=rss,
        unit="MiB",
        target="<= 80",
        met=rss <= 80,
        size=f"{len(rig.servers)} managed containers",
        detail=(
            "lightd run process, 2 s idle after the installs, remote sync on; " + rss_summary(parts)
        ),
        extra={"rss_parts_mib": parts},
    )


def docker_kill(client: docker.DockerClient, name: str) -> None:
    """Kill a server's container behind the agent's back: Docker reports ``die``."""
    client.containers.get(name).kill()


def _update(server: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def match(record: dict[str, Any]) -> bool:
        return bool(record["server"] == server and record["status"] == status)

    return match


def delivery_floor(floor: list[float]) -> str:
    """Figures 2a and 2b's floor, for their detail: the same events' delivery by Docker to a
    bare SDK listener (the bench's own), before the agent can do anything with them."""
    return (
        f"floor, Docker -> a bare SDK listener: p50 {percentile(floor, 50):.1f} / p99 "
        f"{percentile(floor, 99):.1f} ms"
    )


async def figure_2_remote(rig: AgentRig, run: Run) -> Figure:
    assert rig.client is not None and rig.docker_events is not None
    samples: list[float] = []
    crashes: list[float] = []  # Docker "die" -> "crashed"
    starts: list[float] = []  # Docker "start" (after POST /start) -> "running"
    floor: list[float] = []  # Docker's event -> a bare SDK listener in this process
    floor_die: list[float] = []
    since = len(await rig.records())
    servers = list(rig.servers)
    cycles = run.sizes.event_cycles
    with Profiler(
        rig.agent.pid if rig.agent else 0,
        run.run_dir / "profile-2-agent.raw",
        run.profile,
        idle=True,
    ) as prof:
        for k in range(cycles):
            if run.remaining() < 0:
                run.notes.append(f"figure 2 stopped at cycle {k} of {cycles}: time budget spent")
                break
            server = servers[k % len(servers)]
            name = f"lightd-{rig.node_id}-{server}"
            mark = rig.docker_events.count()
            await asyncio.to_thread(docker_kill, run.docker, name)
            record, since = await rig.wait_record(since, _update(server, "crashed"), 10)
            died = rig.docker_events.delivery(server, "die", mark)
            if died is not None:
                samples.append((record["t_ns"] - died[0]) / 1e6)
                crashes.append(samples[-1])
                floor.append((died[1] - died[0]) / 1e6)
                floor_die.append(floor[-1])
            mark = rig.docker_events.count()
            response = await rig.client.post(f"/containers/{server}/start")
            response.raise_for_status()
            record, since = await rig.wait_record(since, _update(server, "running"), 10)
            started = rig.docker_events.delivery(server, "start", mark)
            if started is not None:
                samples.append((record["t_ns"] - started[0]) / 1e6)
                starts.append(samples[-1])
                floor.append((started[1] - started[0]) / 1e6)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return Figure(
        figure="2a. Event latency: Docker event -> remote /update (p99)",
        value=p99,
        unit="ms",
        target="< 50",
        met=p99 < 50,
        size=f"{len(samples)} events (die and start)",
        detail=(
            f"p50 {p50:.1f} ms, max {max(samples, default=float('nan')):.1f} ms; die -> crashed "
            f"p50 {percentile(crashes, 50):.1f} / p99 {percentile(crashes, 99):.1f} ms; start -> "
            f"running p50 {percentile(starts, 50):.1f} / p99 {percentile(starts, 99):.1f} ms; "
            f"remote up; {delivery_floor(floor)} (die p50 {percentile(floor_die, 50):.1f} / "
            f"p99 {percentile(floor_die, 99):.1f} ms)"
        ),
        extra={
            "ms": summary(samples),
            "crash_ms": summary(crashes),
            "start_ms": summary(starts),
            "docker_delivery_ms": summary(floor),
            "docker_delivery_die_ms": summary(floor_die),
            "profile": prof.summary,
        },
    )


async def _power(rig: AgentRig, server: str, actions: int, answers: list[Answer]) -> None:
    assert rig.client is not None
    for k in range(actions):
        action = "kill" if k % 2 == 0 else "start"
        response = await rig.client.post(f"/containers/{server}/{action}")
        if response.status_code == 200:
            answers.append(Answer(server, action, 200, state=str(response.json()["state"])))
        else:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            answers.append(Answer(server, action, response.status_code, detail=detail))


async def _settled(rig: AgentRig, timeout: float = 30.0) -> None:
    """Wait until the agent's outbox is empty: every earlier update reached the remote."""
    deadline = time.monotonic() + timeout
    while int((await rig.remote_status()).get("outbox_depth") or 0) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent's outbox did not empty within {timeout:g}s")
        await asyncio.sleep(0.05)


def _last_sequences(records: list[dict[str, Any]]) -> dict[str, int]:
    last: dict[str, int] = {}
    for record in records:
        if record.get("sequence") is not None:
            server = str(record["server"])
            last[server] = max(last.get(server, 0), int(record["sequence"]))
    return last


async def figure_6(rig: AgentRig, run: Run) -> Figure:
    target = run.sizes.outbox_updates
    servers = list(rig.servers)
    per_server = max(2, 2 * round(target / len(servers) / 2))  # even: every server ends running
    assert rig.client is not None and rig.agent is not None
    await _settled(rig)  # so the last sequence received is each server's last one
    before = _last_sequences(await rig.records())
    initial = {}
    for server in servers:
        response = await rig.client.get(f"/containers/{server}/status")
        response.raise_for_status()
        initial[server] = str(response.json()["state"])
    log_from = rig.agent.log_path.stat().st_size
    rig.stop_recorder()
    answers: list[Answer] = []
    await asyncio.gather(*(_power(rig, s, per_server, answers) for s in servers))
    status = await rig.remote_status()
    queued = int(status.get("outbox_depth") or 0)
    expected = count_outage(initial, answers, before, []).changes
    rig.start_recorder()
    back = await rig.started_ns()  # the remote's return: when its process began serving
    deadline = time.monotonic() + max(30.0, min(180.0, run.remaining()))
    records: list[dict[str, Any]] = []
    with Profiler(
        rig.agent.pid if rig.agent else 0,
        run.run_dir / "profile-6-agent.raw",
        run.profile,
        idle=True,
    ) as prof:
        while time.monotonic() < deadline:
            records = await rig.records()
            if len({str(r["key"]) for r in records}) >= max(expected, queued):
                # every update the answers or the outbox promise has arrived; nothing more?
                if int((await rig.remote_status()).get("outbox_depth") or 0) == 0:
                    break
            await asyncio.sleep(0.05)
    count = count_outage(initial, answers, before, records)
    with rig.agent.log_path.open("rb") as log:
        log.seek(log_from)
        lines = log.read().decode("utf-8", "replace").splitlines()
    unexplained_5xx = unexplained(answers, lines)
    drain = (max(r["t_ns"] for r in records) - back) / 1e9 if records else float("nan")
    first = (min(r["t_ns"] for r in records) - back) / 1e9 if records else float("nan")
    status = await rig.remote_status()
    rate = count.received / (drain - first) if records and drain > first else float("nan")
    refusals = (
        "; ".join(f"{n} x {reason}" for reason, n in count.refused.most_common())
        if count.refusals
        else "none"
    )
    return Figure(
        figure="6. Outbox recovery: updates lost after a remote outage",
        value=float(count.lost),
        unit="updates",
        target="= 0",
        met=count.lost == 0,
        size=f"{count.changes} updates queued ({len(servers)} servers)",
        detail=(
            f"drained {drain:.2f} s after the remote came back (first delivery at "
            f"{first:.2f} s: health check every 1 s; then {rate:.0f} updates/s); "
            f"{len(answers)} actions: {count.answered} answered 200, {count.changes} changed "
            f"a state; the agent numbered {count.produced} updates ({count.extra} beyond the "
            f"state changes), the remote received {count.received} distinct "
            f"({len(records)} requests); outbox held {queued} before, "
            f"{status.get('outbox_depth')} after; refused {count.refusals} "
            f"({unexplained_5xx} not explained by the agent's log): {refusals}"
        ),
        extra={
            "drain_seconds": drain,
            "first_delivery_seconds": first,
            "rate": rate,
            "actions": len(answers),
            "answered": count.answered,
            "state_changes": count.changes,
            "produced": count.produced,
            "extra_updates": count.extra,
            "received": count.received,
            "lost_by_server": count.lost_by_server,
            "refused": dict(count.refused),
            "unexplained_refusals": unexplained_5xx,
            "outbox_before": queued,
            "profile": prof.summary,
        },
    )


async def agent_figures(run: Run) -> list[Figure]:
    """Figures 1, 7a, 2a, 6, in that order, on one agent."""
    async with AgentRig(run) as rig:
        figures = await figure_1(rig, run)
        figures.append(await figure_7_agent(rig, run))
        figures.append(await figure_2_remote(rig, run))
        figures.append(await figure_6(rig, run))
    return figures
