"""A disk image survives the agent and the host: a new ``lightd run`` on the same storage mounts
every image before any server starts.

A host restart is simulated on the shared machine by what it leaves behind: the server's
container stopped (killed) and its image unmounted, then a new agent process on the same config
and state directory. The server's data must be there when it runs again; an image that fails its
check leaves the server ``failed`` and not started, on the bare directory or anywhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from lightd_agent.disks.loop import mount_source
from tests.agent.conftest import SERVE, remove_node, write_config
from tests.agent.test_recovery import AgentProcess
from tests.harness.disks import loop_images, release_disks, require_loop
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
def node(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[str]:
    require_loop()
    name = f"test-{os.urandom(5).hex()}"
    try:
        yield name
    finally:
        remove_node(docker_client, name)
        release_disks(tmp_path)


def _agent(tmp_path: Path, node: str) -> AgentProcess:
    port = free_port()
    config = write_config(tmp_path, node, server={"host": "127.0.0.1", "port": port})
    return AgentProcess(config, port, tmp_path / "agent.log")


def _host_restart(docker_client: docker.DockerClient, node: str, root: Path, image: Path) -> None:
    """What a host reboot leaves: the server's container stopped, its image not mounted."""
    for container in docker_client.containers.list(filters={"label": f"lightd.node={node}"}):
        container.kill()
        container.wait(timeout=30)
    subprocess.run(["umount", str(root)], check=True)
    wait_until(lambda: not loop_images(image.parent), 20, what="the loop device to go")
    assert mount_source(root) is None


def _exec(agent: AgentProcess, server: str, command: str) -> dict[str, Any]:
    response = agent.client.post(f"/containers/{server}/exec", json={"command": command})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_new_agent_mounts_the_image_before_the_server_starts(
    tmp_path: Path,
    node: str,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    agent = _agent(tmp_path, node)
    storage = tmp_path / "storage"
    root, image = storage / "volumes" / "keep", storage / "disks" / "keep.img"
    try:
        agent.start()
        body = {
            "id": "keep",
            "image": test_image,
            "labels": dict(docker_cleanup.labels),
            "startup_command": SERVE,
            "limits": {"disk": "16m"},
        }
        assert agent.client.post("/containers", json=body).status_code == 202
        agent.wait_state("keep", "running")
        wrote = _exec(agent, "keep", "echo survived > /data/proof && sync")
        assert wrote["status"] == "success", wrote
        agent.stop()

        _host_restart(docker_client, node, root, image)
        assert os.listdir(root) == []  # the bare directory holds nothing of the server's

        agent = _agent(tmp_path, node)
        agent.start()
        # state file: running; container: dead -> a crash, restarted by the policy, on the image
        state = agent.wait_state("keep", "running")
        assert state["restarts"] == 1, state
        assert mount_source(root) is not None
        assert _exec(agent, "keep", "cat /data/proof")["output"].strip() == "survived"
        quota = agent.client.get("/volumes/keep/quota").json()
        assert quota["limit_mb"] == 16
        log = agent.log.read_text()
        assert "disk quotas (limits.disk): loop-mounted ext4 works on this host" in log
    finally:
        agent.stop()


def test_an_image_that_fails_its_check_leaves_the_server_failed(
    tmp_path: Path,
    node: str,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    agent = _agent(tmp_path, node)
    storage = tmp_path / "storage"
    root, image = storage / "volumes" / "broken", storage / "disks" / "broken.img"
    try:
        agent.start()
        body = {
            "id": "broken",
            "image": test_image,
            "labels": dict(docker_cleanup.labels),
            "startup_command": SERVE,
            "limits": {"disk": "16m"},
        }
        assert agent.client.post("/containers", json=body).status_code == 202
        agent.wait_state("broken", "running")
        agent.stop()
        _host_restart(docker_client, node, root, image)
        with image.open("r+b") as disk:  # the primary superblock zeroed
            disk.seek(1024)
            disk.write(b"\0" * 1024)

        agent = _agent(tmp_path, node)
        agent.start()
        state = agent.state("broken")
        assert state["state"] == "failed", state
        assert "disk image could not be mounted" in state["error"], state
        assert "e2fsck" in state["error"]
        assert mount_source(root) is None
        containers = docker_client.containers.list(
            all=True, filters={"label": f"lightd.node={node}"}
        )
        assert containers and not any(c.status == "running" for c in containers)
        started = agent.client.post("/containers/broken/start")
        assert started.status_code == 409, started.text
        assert os.listdir(root) == []
    finally:
        agent.stop()
