"""Fixtures for the agent's tests: a real agent (uvicorn on loopback) on the real engine.

Every agent gets a node id of its own (``test-<hex>``) and every server spec carries the test's
cleanup label, so teardown removes exactly what this test created, even after a failure, and
tests running at the same time on the shared engine never see each other's containers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig, load_config
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.schedules import Clock
from tests.harness.docker import Cleanup
from tests.harness.servers import serve
from tests.harness.wait import wait_until

TOKEN = "lightd_" + "0123456789abcdef" * 2

SERVE = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
"""A server that runs until asked to stop, and stops at once on SIGTERM."""

STUBBORN = "trap '' TERM; while true; do sleep 0.1; done"
"""A server that ignores SIGTERM: a graceful stop can only end in a kill."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def remove_node(client: docker.DockerClient, node: str) -> None:
    """Remove every container and volume labelled with this agent's node id."""
    selector = f"lightd.node={node}"
    for container in client.containers.list(all=True, filters={"label": selector}):
        with_suppress_remove(container)
    for volume in client.volumes.list(filters={"label": selector}):
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass


def with_suppress_remove(container: Any) -> None:
    try:
        container.remove(force=True, v=True)
    except docker.errors.APIError:
        pass


def write_config(base: Path, node: str, **sections: dict[str, Any]) -> Path:
    """A config.json for a test agent: own node id, own storage, short timeouts."""
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 8070},
        "authorization": {"enabled": True, "token": TOKEN},
        "docker": {"call_timeout": "20s", "install_timeout": "30s", "reconnect_interval": "200ms"},
        "storage": {"base_path": str(base / "storage")},
        "node": {"id": node, "name": "test agent"},
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    path = base / "config.json"
    path.write_text(json.dumps(document, indent=2))
    return path


@dataclass
class Agent:
    """A running agent: its URL, app, an authorised client and the events it published."""

    url: str
    app: Any
    config: AgentConfig
    client: httpx.Client
    cleanup: Cleanup
    events: list[LifecycleEvent] = field(default_factory=list)

    @property
    def node(self) -> str:
        return self.config.node.id

    def spec(self, server: str, image: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"id": server, "image": image, "labels": dict(self.cleanup.labels)}
        body.update(fields)
        return body

    def status(self, server: str) -> dict[str, Any]:
        response = self.client.get(f"/containers/{server}/status")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_state(self, server: str, *states: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(
            lambda: (s := self.status(server))["state"] in states and s,
            timeout,
            what=f"{server} in {states}",
        )

    def kinds(self, server: str) -> list[str]:
        return [e.kind for e in list(self.events) if e.server == server]

    def wait_kinds(self, server: str, expected: list[str], timeout: float = 30) -> list[str]:
        """Wait until the server's event kinds start with ``expected``; return them all."""
        wait_until(
            lambda: self.kinds(server)[: len(expected)] == expected,
            timeout,
            what=f"events of {server} starting with {expected}",
        )
        return self.kinds(server)

    def install(self, server: str, image: str, **fields: Any) -> dict[str, Any]:
        response = self.client.post("/containers", json=self.spec(server, image, **fields))
        assert response.status_code == 202, response.text
        assert response.json() == {"id": server, "state": "installing"}
        wanted = ("running",) if fields.get("start_on_completion", True) else ("ready",)
        return self.wait_state(server, *wanted, "failed")

    def owned(self, docker_client: docker.DockerClient) -> list[Any]:
        return list(
            docker_client.containers.list(all=True, filters={"label": f"lightd.node={self.node}"})
        )


AgentFactory = Callable[..., Agent]


@pytest.fixture
def make_agent(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> Iterator[AgentFactory]:
    """Start agents in this process (uvicorn in a thread); all stopped and cleaned up after."""
    stack: list[Any] = []
    nodes: list[str] = []

    def start(
        node: str | None = None, *, clock: Clock | None = None, **sections: dict[str, Any]
    ) -> Agent:
        node = node or f"test-{uuid.uuid4().hex[:10]}"
        nodes.append(node)
        base = tmp_path / node
        base.mkdir(exist_ok=True)
        path = write_config(base, node, **sections)
        config = load_config(path)
        bus = EventBus()
        recorded: list[LifecycleEvent] = []
        bus.add_listener(recorded.append)
        app = create_app(config, config_path=path, bus=bus, clock=clock)
        server = serve(app)
        url = server.__enter__()
        stack.append(server)
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        stack.append(client)
        return Agent(url, app, config, client, docker_cleanup, recorded)

    try:
        yield start
    finally:
        for item in reversed(stack):
            if isinstance(item, httpx.Client):
                item.close()
            else:
                item.__exit__(None, None, None)
        for node in nodes:
            remove_node(docker_client, node)


@pytest.fixture
def agent(make_agent: AgentFactory) -> Agent:
    return make_agent()
