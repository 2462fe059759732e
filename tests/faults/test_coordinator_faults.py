"""The coordinator SIGKILLed (sqlite registry), or away for a while (memory registry), then back.

A real agent is enrolled with a coordinator process and syncs every lifecycle change to it
(``/api/v1/remote/{node_id}``). The coordinator is killed with ``kill -9``; while it is gone the
agent notices (heartbeats fail) and a new server's updates queue in the agent's outbox. The
coordinator comes back on the same sqlite file: the node is still known, the queued updates
arrive, and a client resuming ``/ws`` with the ``Last-Event-ID`` it had before the kill gets
every event after it, with increasing ids, each server's updates once and in order. With the
memory registry the coordinator comes back knowing nothing: the agent enrols again and the
updates it queued meanwhile still arrive, in order, none dead-lettered. Nothing is orphaned on
the agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.coordinator.harness import sse
from tests.faults.harness import check_no_orphans, remote_health, spec, wait_drained
from tests.harness.docker import Cleanup
from tests.integration.fleet import API_TOKEN, STATIC, start_agent, start_coordinator, wait_until
from tests.remote.agent import wait_state

pytestmark = pytest.mark.docker

SEED_INSTALL = ["installing", "installing", "ready", "running"]
AUTH = {"Authorization": f"Bearer {STATIC}"}


def _replay(base: str, last_id: int, servers: set[str]) -> list[tuple[int, dict[str, Any]]]:
    """Every event after ``last_id``, until each of ``servers`` is running."""
    got: list[tuple[int, dict[str, Any]]] = []
    running: set[str] = set()
    with sse(base, headers={**AUTH, "Last-Event-ID": str(last_id)}) as stream:
        while running != servers:
            message = stream.next_message(timeout=30)
            event = message.json()
            assert event["type"] != "initial_state", "the resume point was lost"
            got.append((int(message.id or "0"), event))
            update = event["data"].get("update", {}) if event["type"] == "server_update" else {}
            if update.get("status") == "running":
                running.add(event["data"]["server"])
    return got


def test_coordinator_sigkill_and_outage_then_resume_by_last_event_id(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    database = tmp_path / "coordinator.db"
    coordinator = start_coordinator(
        tmp_path, registry={"provider": "sqlite", "path": str(database)}
    )
    agent = start_agent(tmp_path, coordinator.url, "coordfault", allow_exec=False)
    client = httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
    )
    try:
        with httpx.Client(base_url=coordinator.url, headers=AUTH) as operator:
            wait_until(lambda: operator.get(f"/api/v1/nodes/{agent.node_id}").status_code == 200)
        with sse(coordinator.url, headers=AUTH) as stream:
            resume_from = int(stream.next_message().id or "0")  # initial_state: the newest id

        body = spec("before", test_image, docker_cleanup.labels)
        assert client.post("/containers", json=body).status_code == 202
        wait_state(client, "before", {"running"})
        wait_drained(client)  # the coordinator acknowledged every update of "before"

        coordinator.kill()
        body = spec("during", test_image, docker_cleanup.labels)
        assert client.post("/containers", json=body).status_code == 202
        wait_state(client, "during", {"running"})

        def noticed() -> bool:
            health = client.get("/health").json()
            queued = health["remote"]["outbox_depth"] >= len(SEED_INSTALL)
            return queued and health["coordinator"]["last_error"] is not None

        wait_until(noticed, what="the agent noticed the coordinator was gone")

        coordinator.start()  # same port, same sqlite file
        with httpx.Client(base_url=coordinator.url, headers=AUTH) as operator:
            assert operator.get(f"/api/v1/nodes/{agent.node_id}").status_code == 200
        wait_drained(client)
        assert remote_health(client)["dead_letters"] == 0

        events = _replay(coordinator.url, resume_from, {"before", "during"})
        ids = [event_id for event_id, _ in events]
        assert ids[0] == resume_from + 1 and ids == sorted(set(ids)), ids
        per_server: dict[str, list[str]] = {}
        for _, event in events:
            if event["type"] == "server_update":
                data = event["data"]
                assert data["node"] == agent.node_id
                status = data["update"].get("status") or f"error:{data['update'].get('error')}"
                per_server.setdefault(data["server"], []).append(status)
        assert per_server == {"before": SEED_INSTALL, "during": SEED_INSTALL}, per_server
        check_no_orphans(client, docker_client, agent.node_id)
    finally:
        client.close()
        agent.stop()
        coordinator.stop()


def test_coordinator_away_for_a_while_with_the_memory_registry(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    """Back with nothing remembered: the agent enrols again and its queued updates still arrive."""
    coordinator = start_coordinator(tmp_path)  # memory registry: a restart forgets every node
    agent = start_agent(tmp_path, coordinator.url, "away", allow_exec=False)
    client = httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
    )
    try:
        with httpx.Client(base_url=coordinator.url, headers=AUTH) as operator:
            wait_until(lambda: operator.get(f"/api/v1/nodes/{agent.node_id}").status_code == 200)
        coordinator.stop()
        body = spec("meanwhile", test_image, docker_cleanup.labels)
        assert client.post("/containers", json=body).status_code == 202
        wait_state(client, "meanwhile", {"running"})
        wait_until(
            lambda: client.get("/health").json()["coordinator"]["last_error"] is not None,
            what="the agent noticed the coordinator was gone",
        )
        assert remote_health(client)["outbox_depth"] == len(SEED_INSTALL)

        coordinator.start()
        # a fresh memory history starts at id 1: resuming from 0 misses nothing since the start
        with sse(coordinator.url, headers={**AUTH, "Last-Event-ID": "0"}) as stream:
            statuses: list[str] = []
            while statuses != SEED_INSTALL:
                event = stream.next_message(timeout=30).json()
                assert event["type"] != "initial_state", "events since the restart were lost"
                if event["type"] == "server_update" and event["data"]["server"] == "meanwhile":
                    statuses.append(event["data"]["update"]["status"])
                    assert statuses == SEED_INSTALL[: len(statuses)], statuses
        with httpx.Client(base_url=coordinator.url, headers=AUTH) as operator:
            node = operator.get(f"/api/v1/nodes/{agent.node_id}")
            assert node.status_code == 200 and node.json()["status"] == "active", node.text
        wait_drained(client)
        assert remote_health(client)["dead_letters"] == 0
        check_no_orphans(client, docker_client, agent.node_id)
    finally:
        client.close()
        agent.stop()
        coordinator.stop()
