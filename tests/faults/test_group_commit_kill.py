"""SIGKILL at random points of a burst: after every kill, the state and the outbox agree.

One real ``lightd run`` process (``events: all``) whose remote is down the whole time, so every
update it ever numbered stays in its outbox. Concurrent start/stop/kill loops on its servers
change states as fast as Docker lets them; at a random moment the agent gets SIGKILL (no
shutdown, no flush), is started again on the same state directory, and once its recovery has
settled the test reads the outbox file itself and checks, per server:

- the sequence numbers are ``1..n``: no update was ever lost or numbered twice;
- the last status update (an action that failed adds an error update and leaves the state) is
  the state the agent reports now: a restart never reports an older state than the one the
  remote would be sent, and never a newer one it will not be told about.

The random seed is printed, so a failing run can be repeated (``LIGHTD_KILL_SEED``).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.harness import client_of, spec
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.integration.fleet import AgentProcess
from tests.remote.agent import agent_config, wait_state

pytestmark = pytest.mark.docker

SERVERS = 4
KILLS = 5
STABLE = {"running", "stopped", "crashed", "failed", "ready"}
STATUS_OF_STATE = {
    "running": "running",
    "stopped": "stopped",
    "crashed": "crashed",
    "ready": "ready",
    "failed": "error:failed",
}


def _burst(url: str, servers: list[str], stop: threading.Event, seed: int) -> None:
    """One thread per server: start, stop, kill, restart in a random order until ``stop``."""

    def loop(server: str, rng: random.Random) -> None:
        with httpx.Client(
            base_url=url, headers=client_headers(), timeout=httpx.Timeout(10, connect=1)
        ) as client:
            while not stop.is_set():
                action = rng.choice(["start", "stop", "kill", "restart", "start"])
                body = {"timeout": "1s"} if action in ("stop", "restart") else None
                try:
                    client.post(f"/containers/{server}/{action}", json=body)
                except httpx.HTTPError:
                    time.sleep(0.02)  # the agent is being killed or restarted

    threads = [
        threading.Thread(target=loop, args=(s, random.Random(seed + n)), daemon=True)
        for n, s in enumerate(servers)
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=15)


def client_headers() -> dict[str, str]:
    from tests.remote.agent import API_TOKEN

    return {"Authorization": f"Bearer {API_TOKEN}"}


def _outbox(path: Path) -> dict[str, list[tuple[int, str]]]:
    """Per server, ``(sequence, status)`` of every update in the outbox file, in order."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT server, seq, body FROM updates ORDER BY server, seq").fetchall()
    finally:
        db.close()
    found: dict[str, list[tuple[int, str]]] = {}
    for server, seq, body in rows:
        decoded: dict[str, Any] = json.loads(body)
        status = decoded.get("status") or f"error:{decoded.get('error')}"
        found.setdefault(server, []).append((int(seq), str(status)))
    return found


def _settled_states(client: httpx.Client, servers: list[str]) -> dict[str, str]:
    """The servers' states once every one is stable and two reads a moment apart agree."""
    deadline = time.monotonic() + 60
    last: dict[str, str] | None = None
    while time.monotonic() < deadline:
        now = {s: client.get(f"/containers/{s}/status").json()["state"] for s in servers}
        if set(now.values()) <= STABLE and now == last:
            return now
        last = now
        time.sleep(0.3)
    raise AssertionError(f"the servers never settled after the restart: {last}")


def test_sigkill_during_a_burst_leaves_state_and_outbox_agreeing(
    tmp_path: Path, test_image: str, docker_cleanup: Cleanup
) -> None:
    seed = int(os.environ.get("LIGHTD_KILL_SEED") or random.randrange(1 << 30))
    print(f"LIGHTD_KILL_SEED={seed}")
    rng = random.Random(seed)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every update stays queued
    document = agent_config(tmp_path / "agent", down, events="all")
    document["node"]["id"] = f"kill-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "agent.json"
    config.write_text(json.dumps(document), encoding="utf-8")
    agent = AgentProcess(
        config=config,
        log=tmp_path / "agent.log",
        node_id=document["node"]["id"],
        port=document["server"]["port"],
    )
    outbox = tmp_path / "agent" / "storage" / "state" / "remote-outbox.sqlite3"
    servers = [f"k{n}" for n in range(SERVERS)]
    agent.start()
    try:
        with client_of(agent) as client:
            for server in servers:
                answer = client.post(
                    "/containers", json=spec(server, test_image, docker_cleanup.labels)
                )
                assert answer.status_code == 202, answer.text
            for server in servers:
                wait_state(client, server, {"running"})
        for kill in range(KILLS):
            stop = threading.Event()
            burst = threading.Thread(target=_burst, args=(agent.url, servers, stop, seed + kill))
            burst.start()
            time.sleep(rng.uniform(0.05, 1.5))
            agent.kill()
            stop.set()
            burst.join(timeout=30)
            agent.start()
            with client_of(agent) as client:
                states = _settled_states(client, servers)
            updates = _outbox(outbox)
            for server in servers:
                numbered = [seq for seq, _ in updates[server]]
                assert numbered == list(range(1, len(numbered) + 1)), (kill, server, numbered)
                # an action that failed leaves the state as it was and adds an error update
                said = [status for _, status in updates[server]]
                kept = (
                    said
                    if states[server] == "failed"
                    else [status for status in said if not status.startswith("error:")]
                )
                last = kept[-1]
                assert last == STATUS_OF_STATE[states[server]], (
                    f"kill {kill} (seed {seed}): {server} is {states[server]} but the last "
                    f"update in its outbox says {last}: {updates[server][-6:]}"
                )
    finally:
        agent.stop()
