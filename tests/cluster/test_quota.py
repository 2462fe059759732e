"""The compose cluster's agents run unprivileged in containers, where loop devices cannot be
mounted: a create with ``limits.disk`` is refused there with the reason, and nothing is made.

Deselected by default (marker ``cluster``); run with ``pytest -m cluster tests/cluster``.
"""

from __future__ import annotations

import uuid

import docker
import httpx
import pytest

from tests.harness.docker import Cleanup

pytestmark = pytest.mark.cluster


def test_a_disk_limit_is_refused_where_the_agent_cannot_loop_mount(
    coordinator: httpx.Client,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    test_image: str,
) -> None:
    server = f"quota-{uuid.uuid4().hex[:10]}"
    spec = {
        "id": server,
        "image": test_image,
        "labels": docker_cleanup.labels,
        "limits": {"disk": "20m"},
    }
    answer = coordinator.post("/api/v1/nodes/agent-3/containers", json=spec)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "failed", result
    assert "limits.disk cannot be enforced on this agent" in result["output"], result
    status = coordinator.get(f"/api/v1/nodes/agent-3/containers/{server}").json()
    assert status["status"] == "failed" and "no server" in status["output"], status
    assert not docker_client.containers.list(all=True, filters={"label": f"lightd.server={server}"})
    quota = coordinator.get(f"/api/v1/nodes/agent-3/containers/{server}/quota").json()
    assert quota["status"] == "failed", quota
