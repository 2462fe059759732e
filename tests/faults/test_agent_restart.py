"""The agent restarted (SIGTERM, then SIGKILL) while its servers run, one crashing meanwhile.

Running servers keep their containers and send no update for the agent's restart; the server
whose container was killed while the agent was away is reported as a crash once, after the
restart, and started again by its policy; every update reaches the remote once, in order per
server; nothing is orphaned.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.faults.harness import (
    check_deliveries,
    check_no_orphans,
    client_of,
    spec,
    start_agent,
    statuses,
    wait_drained,
)
from tests.harness.docker import Cleanup
from tests.remote.agent import wait_state
from tests.remote.recorder import RemoteServer

pytestmark = pytest.mark.docker


def _container_id(client: object, server: str) -> str:
    view = client.get(f"/containers/{server}/status").json()  # type: ignore[attr-defined]
    return str(view["container_id"])


def test_restarts_keep_running_servers_and_report_a_crash_from_while_away(
    tmp_path: Path,
    remote: RemoteServer,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    agent = start_agent(tmp_path, remote)
    client = client_of(agent)
    try:
        for server in ("steady", "victim"):
            body = spec(server, test_image, docker_cleanup.labels)
            assert client.post("/containers", json=body).status_code == 202
        for server in ("steady", "victim"):
            wait_state(client, server, {"running"})
        wait_drained(client)
        steady_container = _container_id(client, "steady")
        before = statuses(remote)

        agent.stop()  # a clean shutdown leaves the servers running
        docker_client.containers.get(
            _container_id_of(docker_client, agent.node_id, "victim")
        ).kill()
        agent.start()
        wait_state(client, "victim", {"running"})
        assert _container_id(client, "steady") == steady_container
        wait_drained(client)

        agent.kill()  # and a hard one
        agent.start()
        assert wait_state(client, "steady", {"running"}) == "running"
        assert _container_id(client, "steady") == steady_container

        check_deliveries(client, remote)
        got = statuses(remote)
        assert got["steady"] == before["steady"] == ["installing", "installing", "ready", "running"]
        assert got["victim"][: len(before["victim"])] == before["victim"]
        assert got["victim"][len(before["victim"]) :] == ["crashed", "running"], got
        check_no_orphans(client, docker_client, agent.node_id)
    finally:
        client.close()
        agent.stop()


def _container_id_of(docker_client: docker.DockerClient, node_id: str, server: str) -> str:
    filters = {"label": [f"lightd.node={node_id}", f"lightd.server={server}", "lightd.role=server"]}
    (container,) = docker_client.containers.list(filters=filters)
    return str(container.id)
