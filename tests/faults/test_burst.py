"""A burst: many commands dispatched and servers created at once through the coordinator.

A coordinator process and one real agent (``commands.allow_exec`` on); 60 ``exec`` commands
and 12 creates are sent concurrently. Every command answers ``success`` with its own output
and its own id, every server runs, every update reaches the (recording) remote once and in
order per server, and no container is orphaned.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.faults.harness import check_deliveries, check_no_orphans, spec, statuses
from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    API_TOKEN,
    STATIC,
    agent_document,
    run_agent,
    start_coordinator,
    wait_until,
)
from tests.remote.agent import wait_state
from tests.remote.conftest import REMOTE_TOKEN
from tests.remote.recorder import RemoteServer

pytestmark = pytest.mark.docker

DISPATCHES = 60
CREATES = 12


async def _burst(base: str, node_id: str, specs: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=DISPATCHES + CREATES)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {STATIC}"}, timeout=120, limits=limits
    ) as client:
        dispatches = [
            client.post(
                f"/api/v1/nodes/{node_id}/commands",
                json={"type": "exec", "action": f"echo burst-{n}"},
            )
            for n in range(DISPATCHES)
        ]
        creates = [client.post(f"/api/v1/nodes/{node_id}/containers", json=s) for s in specs]
        return list(await asyncio.gather(*dispatches, *creates))


def test_a_burst_of_dispatches_and_creates(
    tmp_path: Path,
    remote: RemoteServer,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    coordinator = start_coordinator(tmp_path)
    node_id = f"burst-{uuid.uuid4().hex[:8]}"
    document = agent_document(tmp_path, coordinator.url, node_id, allow_exec=True)
    document["remote"].update(url=remote.url, token=REMOTE_TOKEN)  # record what it sends
    agent = run_agent(tmp_path, document, name="agent")
    client = httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
    )
    try:
        with httpx.Client(
            base_url=coordinator.url, headers={"Authorization": f"Bearer {STATIC}"}
        ) as operator:
            wait_until(lambda: operator.get(f"/api/v1/nodes/{node_id}").status_code == 200)
        servers = [f"b{n}" for n in range(CREATES)]
        specs = [spec(server, test_image, docker_cleanup.labels) for server in servers]
        answers = asyncio.run(_burst(coordinator.url, node_id, specs))

        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.is_error]
        results = [a.json() for a in answers]
        assert [r["status"] for r in results] == ["success"] * len(results), results
        outputs = [r["output"].strip() for r in results[:DISPATCHES]]
        assert outputs == [f"burst-{n}" for n in range(DISPATCHES)]
        assert len({r["id"] for r in results}) == len(results)
        for server in servers:
            wait_state(client, server, {"running"})

        check_deliveries(client, remote)
        got = statuses(remote)
        assert got == {s: ["installing", "installing", "ready", "running"] for s in servers}, got
        check_no_orphans(client, docker_client, node_id)
    finally:
        client.close()
        agent.stop()
        coordinator.stop()
