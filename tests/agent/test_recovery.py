"""Recovery after ``kill -9``: the agent runs as a real ``lightd run -c`` process, is killed with
SIGKILL mid-install, and started again on the same config and state directory.

Expected: running servers stay running (same container, never duplicated); a server whose
container died while the agent was away is handled by its crash policy; the install that was
cut off is marked ``failed`` with a reason, reported on ``/events``, and its one-off install
container is removed, so nothing is orphaned.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, remove_node, write_config
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.harness.startup import wait_healthy
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


class AgentProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lightd_agent", "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(self.process, self.url, name="agent", logs=self.log.read_text)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()

    def state(self, server: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get(f"/containers/{server}/status").json()
        return result

    def wait_state(self, server: str, *states: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: (s := self.state(server))["state"] in states and s,
            timeout,
            what=f"{server} in {states}",
        )


@pytest.fixture
def node(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"test-{os.urandom(5).hex()}"
    try:
        yield name
    finally:
        remove_node(docker_client, name)


def _events_since_start(agent: AgentProcess) -> list[dict[str, Any]]:
    """Every event the (new) agent process published so far, replayed through ``/events``."""
    events: list[dict[str, Any]] = []
    headers = {"Last-Event-ID": "0"}
    with agent.client.stream("GET", "/events", headers=headers, timeout=1) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        try:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        except httpx.ReadTimeout:
            pass  # the stream stays open; we have what was replayed
    return events


def test_recovery_after_sigkill(
    tmp_path: Path,
    node: str,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        node,
        server={"host": "127.0.0.1", "port": port},
        logging={"json": True},
    )
    agent = AgentProcess(config, port, tmp_path / "agent.log")
    try:
        agent.start()
        labels = dict(docker_cleanup.labels)

        def create(server: str, **fields: Any) -> None:
            body = {"id": server, "image": test_image, "labels": labels, **fields}
            response = agent.client.post("/containers", json=body)
            assert response.status_code == 202, response.text

        create("keeper", startup_command=SERVE)
        create("victim", startup_command=SERVE)
        create("cutoff", install_script="sleep 60", startup_command=SERVE)
        keeper = agent.wait_state("keeper", "running")
        victim = agent.wait_state("victim", "running")
        selector = [f"lightd.node={node}", "lightd.role=install"]
        wait_until(
            lambda: docker_client.containers.list(filters={"label": selector}),
            20,
            what="the install container started",
        )
        assert agent.state("cutoff")["state"] == "installing"

        agent.kill9()
        # while no agent watches, one server's container dies
        docker_client.containers.get(victim["container_id"]).kill()
        agent.start()

        keeper_after = agent.wait_state("keeper", "running")
        assert keeper_after["container_id"] == keeper["container_id"]
        assert docker_client.containers.get(keeper["container_id"]).status == "running"

        cutoff = agent.wait_state("cutoff", "failed")
        assert "cut off" in cutoff["error"]
        assert "reinstall" in cutoff["error"]

        victim_after = agent.wait_state("victim", "running")
        assert victim_after["container_id"] == victim["container_id"]
        assert victim_after["restarts"] == 1

        # nothing duplicated or orphaned: one container per installed server, no installer
        owned = docker_client.containers.list(all=True, filters={"label": f"lightd.node={node}"})
        roles = sorted((c.labels["lightd.server"], c.labels["lightd.role"]) for c in owned)
        assert roles == [("keeper", "server"), ("victim", "server")]

        events = _events_since_start(agent)
        errors = [e for e in events if e["kind"] == "Error"]
        assert [e["server"] for e in errors] == ["cutoff"]
        assert errors[0]["error"] == "failed"
        assert "cut off" in errors[0]["data"]
        assert [e["kind"] for e in events if e["server"] == "victim"] == ["Crashed", "Running"]
        assert all(e["server"] != "keeper" for e in events)

        # the recovered agent still manages its servers
        response = agent.client.post("/containers/keeper/stop", json={"timeout": "2s"})
        assert response.json()["state"] == "stopped"
        # logs were JSON lines (logging.json)
        first = agent.log.read_text().splitlines()[0]
        assert json.loads(first)["level"] in {"info", "warning", "error"}
    finally:
        agent.stop()
