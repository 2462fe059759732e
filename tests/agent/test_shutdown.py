"""SIGTERM drains a real ``lightd run`` process: new requests get 503 with the reason, a running
install finishes within ``server.shutdown_grace``, and what outlives the grace is cancelled and
named in the log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, remove_node, write_config
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


class Process:
    def __init__(self, base: Path, grace: str) -> None:
        self.node = f"test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.base = base
        config = write_config(
            base,
            self.node,
            server={"port": self.port, "shutdown_grace": grace},
            logging={"level": "info"},
        )
        self.log = base / "agent.log"
        with self.log.open("w") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "lightd"), "run", "-c", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        wait_until(self._healthy, timeout=30, what="the agent answering /health")

    def _healthy(self) -> bool:
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return self.process.poll() is not None and _fail(self.log.read_text())

    def state_file(self, server: str) -> dict[str, object]:
        path = self.base / "storage" / "state" / "servers" / f"{server}.json"
        document: dict[str, object] = json.loads(path.read_text())
        return document


def _fail(log: str) -> bool:
    raise AssertionError(f"the agent exited early:\n{log}")


@pytest.fixture
def start_agent(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[type[Process]]:
    started: list[Process] = []

    class Started(Process):
        def __init__(self, base: Path, grace: str) -> None:
            super().__init__(base, grace)
            started.append(self)

    try:
        yield Started
    finally:
        for agent in started:
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait(10)
            agent.client.close()
            remove_node(docker_client, agent.node)


def _install(agent: Process, server: str, image: str, script: str, cleanup: Cleanup) -> None:
    body = {
        "id": server,
        "image": image,
        "startup_command": SERVE,
        "install_script": script,
        "labels": dict(cleanup.labels),
    }
    response = agent.client.post("/containers", json=body)
    assert response.status_code == 202, response.text


def _install_running(docker_client: docker.DockerClient, node: str) -> bool:
    selector = [f"lightd.node={node}", "lightd.role=install"]
    found = docker_client.containers.list(filters={"label": selector})
    return bool(found)


def test_sigterm_lets_a_running_install_finish_and_refuses_new_work(
    start_agent: type[Process],
    tmp_path: Path,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    test_image: str,
) -> None:
    agent = start_agent(tmp_path, "30s")
    _install(agent, "finishing", test_image, "sleep 2", docker_cleanup)
    wait_until(lambda: _install_running(docker_client, agent.node), timeout=30)
    agent.process.send_signal(signal.SIGTERM)
    refused = wait_until(
        lambda: (r := agent.client.get("/containers")).status_code == 503 and r, timeout=5
    )
    assert "shutting down" in refused.json()["detail"]
    assert agent.client.get("/health").status_code == 200  # still says it is alive
    assert agent.process.wait(60) is not None
    state = agent.state_file("finishing")
    assert state["state"] == "running", state  # the install finished inside the grace
    log = agent.log.read_text()
    assert "cancelled" not in log, log


def test_work_outliving_the_grace_is_cancelled_and_named(
    start_agent: type[Process],
    tmp_path: Path,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    test_image: str,
) -> None:
    agent = start_agent(tmp_path, "1s")
    _install(agent, "slowpoke", test_image, "sleep 60", docker_cleanup)
    wait_until(lambda: _install_running(docker_client, agent.node), timeout=30)
    agent.process.send_signal(signal.SIGTERM)
    agent.process.wait(30)
    log = agent.log.read_text()
    assert "cancelled install of slowpoke" in log, log
    assert agent.state_file("slowpoke")["state"] == "installing"  # failed at the next start
    # the install container cut off by shutdown was removed
    assert not _install_running(docker_client, agent.node)
