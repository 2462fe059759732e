"""Smoke test of the running compose cluster, entirely through the coordinator's API.

What CI proves after ``./scripts/up`` (``.ci/run``): the three agents enrolled with their labels
and are active; commands reach a named node (``exec`` answers where the node enables it and is
refused where it does not; the document's ``docker ps`` runs there); a server created on one
named node runs there and nowhere else; and its lifecycle, synced by that agent to the
coordinator's remote endpoint, arrives on ``/ws`` as a ``server_update`` event.

Deselected by default (marker ``cluster``); run with ``pytest -m cluster tests/cluster``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import httpx
import pytest

from tests.cluster.conftest import NODES
from tests.harness.docker import Cleanup

pytestmark = pytest.mark.cluster

LABELS = {
    "agent-1": {"zone": "a", "role": "web"},
    "agent-2": {"zone": "a", "role": "worker"},
    "agent-3": {"zone": "b", "role": "worker"},
}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until probe() returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


def succeeded(response: httpx.Response) -> dict[str, Any]:
    """The body of a command result that must have succeeded (fails with the whole answer)."""
    assert response.status_code == 200, f"{response.request.url}: {response.text}"
    result: dict[str, Any] = response.json()
    assert result["status"] == "success", f"{response.request.url}: {result}"
    return result


class EventStream:
    """Reads the coordinator's ``/ws`` in a thread; events land in a queue as parsed JSON."""

    def __init__(self, client: httpx.Client, params: dict[str, str]) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = client
        self._params = params
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            with self._client.stream(
                "GET", "/ws", params=self._params, timeout=httpx.Timeout(10, read=None)
            ) as response:
                response.raise_for_status()
                self.connected.set()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data:"):
                        self.events.put(json.loads(line.removeprefix("data:").strip()))
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc
            self.connected.set()

    def __enter__(self) -> EventStream:
        self._thread.start()
        assert self.connected.wait(15), "/ws did not answer within 15 s"
        assert self.error is None, f"/ws failed: {self.error!r}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # the reader ends at its next line (keep-alives come every ping_period)

    def wait(self, what: str, match: Callable[[dict[str, Any]], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            seen.append(event)
            if match(event):
                return event
        pytest.fail(f"no {what} on /ws within {timeout:.0f}s (error: {self.error!r}); saw {seen}")


def test_three_agents_enrolled_with_their_labels_and_are_active(coordinator: httpx.Client) -> None:
    response = coordinator.get("/api/v1/nodes")

    assert response.status_code == 200, response.text
    nodes = {node["id"]: node for node in response.json()["nodes"]}
    assert set(NODES) <= set(nodes), f"registered: {sorted(nodes)}"
    for node_id in NODES:
        node = nodes[node_id]
        assert node["status"] == "active", node
        assert node["provider"] == "docker"
        assert node["address"] == node_id  # the compose service name: the coordinator's way back
        assert node["port"] == 8070
        assert node["labels"] == LABELS[node_id]
        assert node["capabilities"].get("docker") is True


def test_a_command_reaches_the_named_node_and_exec_only_where_enabled(
    coordinator: httpx.Client,
) -> None:
    command = {"type": "exec", "action": "echo hello world", "params": {"timeout": "10s"}}

    enabled = coordinator.post("/api/v1/nodes/agent-1/commands", json=command)
    refused = coordinator.post("/api/v1/nodes/agent-2/commands", json=command)
    listing = coordinator.post(
        "/api/v1/nodes/agent-3/commands", json={"type": "container", "action": "list"}
    )

    result = succeeded(enabled)
    assert result["node_id"] == "agent-1"
    assert result["output"].strip() == "hello world"
    assert refused.status_code == 200, refused.text
    assert refused.json()["status"] == "failed"
    assert "allow_exec" in refused.json()["output"]
    assert "containers" in json.loads(succeeded(listing)["output"])


def test_the_documents_docker_ps_example_runs_on_the_exec_node(coordinator: httpx.Client) -> None:
    """The coordination document's ``"action": "docker ps"``: the agent image has the CLI."""
    command = {"type": "exec", "action": "docker ps", "params": {"timeout": "20s"}}

    result = succeeded(coordinator.post("/api/v1/nodes/agent-1/commands", json=command))

    header, *rows = result["output"].splitlines()
    assert header.split()[:2] == ["CONTAINER", "ID"], result["output"]
    # the host's engine answers: the cluster's own containers are among those it lists
    assert any(row.split()[-1].endswith("agent-1-1") for row in rows), result["output"]


@pytest.fixture
def server_id(coordinator: httpx.Client) -> Iterator[str]:
    """A fresh server id; the server is deleted through the coordinator afterwards."""
    server = f"smoke-{uuid.uuid4().hex[:10]}"
    try:
        yield server
    finally:
        coordinator.delete(f"/api/v1/nodes/agent-2/containers/{server}")


def server_status(coordinator: httpx.Client, node: str, server: str) -> str | None:
    response = coordinator.get(f"/api/v1/nodes/{node}/containers/{server}")
    if response.status_code != 200 or response.json()["status"] != "success":
        return None
    return str(json.loads(response.json()["output"]).get("state"))


def listed_servers(coordinator: httpx.Client, node: str) -> set[str]:
    output = json.loads(succeeded(coordinator.get(f"/api/v1/nodes/{node}/containers"))["output"])
    return {str(entry["id"]) for entry in output["containers"]}


def test_a_server_created_on_a_named_node_runs_there_only_and_its_lifecycle_reaches_ws(
    coordinator: httpx.Client,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    test_image: str,
    server_id: str,
) -> None:
    spec = {
        "id": server_id,
        "image": test_image,
        "startup_command": "httpd -f -p 8080",
        "ports": [{"container": 8080}],
        "labels": docker_cleanup.labels,  # removed by the harness too, should the test fail
    }
    with EventStream(coordinator, {"types": "server_update", "node": "agent-2"}) as events:
        created = coordinator.post("/api/v1/nodes/agent-2/containers", json=spec)
        succeeded(created)
        wait_for(
            f"{server_id} running on agent-2",
            lambda: server_status(coordinator, "agent-2", server_id) == "running",
        )
        update = events.wait(
            f"server_update for {server_id}",
            lambda event: (
                event.get("type") == "server_update" and event["data"].get("server") == server_id
            ),
            timeout=60,
        )

    containers = docker_client.containers.list(
        all=True, filters={"label": f"lightd.server={server_id}"}
    )
    assert containers, f"no container on the engine carries lightd.server={server_id}"
    assert {c.labels.get("lightd.node") for c in containers} == {"agent-2"}
    assert "running" in {c.status for c in containers}
    assert server_id in listed_servers(coordinator, "agent-2")
    assert server_id not in listed_servers(coordinator, "agent-1")
    assert server_id not in listed_servers(coordinator, "agent-3")
    assert update["data"]["node"] == "agent-2"
    assert update["data"]["update"]["server"] == server_id
