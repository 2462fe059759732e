"""A real stack to fuzz: a coordinator with auth on, a real agent enrolled with it, and a real
server (a busybox container) on that agent, so the ids in the paths name real things.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

from lightd_agent.app import create_app as create_agent
from lightd_agent.config import load_config
from lightd_coordinator.config import Settings
from lightd_coordinator.main import create_app as create_coordinator
from tests.agent.conftest import SERVE, remove_node, write_config
from tests.harness.disks import release_disks
from tests.harness.servers import free_port, serve

STATIC = "fuzz-static-token-0123456789"
AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
API_TOKEN = "lightd_0123456789abcdef0123456789abcdef"
BODY_LIMIT = 256 * 1024


@dataclass
class Stack:
    coordinator: str
    agent: str
    node: str
    server: str
    command: str

    @property
    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {STATIC}"}

    @property
    def agent_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}"}

    def reads_work(self) -> None:
        """Every read of both programs still answers (a fuzzed DELETE may have removed the node
        or the server: then their reads answer 404, nothing else)."""
        with httpx.Client(timeout=30) as client:
            for url in (
                f"{self.coordinator}/api/v1/nodes",
                f"{self.coordinator}/api/v1/services",
                f"{self.coordinator}/metrics",
            ):
                answer = client.get(url, headers=self.operator)
                assert answer.status_code == 200, (url, answer.text)
                answer.json() if "metrics" not in url else answer.text
            for url in (
                f"{self.coordinator}/api/v1/nodes/{self.node}",
                f"{self.coordinator}/api/v1/nodes/{self.node}/status",
            ):
                answer = client.get(url, headers=self.operator)
                assert answer.status_code in (200, 404), (url, answer.text)
            for path in ("/containers", "/remote/status", "/remote/dead-letters"):
                answer = client.get(f"{self.agent}{path}", headers=self.agent_auth)
                assert answer.status_code == 200, (path, answer.text)
            answer = client.get(f"{self.agent}/containers/{self.server}", headers=self.agent_auth)
            assert answer.status_code in (200, 404), answer.text
            assert client.get(f"{self.agent}/health").status_code == 200
            assert client.get(f"{self.coordinator}/health").status_code == 200
            with client.stream(
                "GET", f"{self.coordinator}/ws", headers=self.operator, timeout=10
            ) as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    if line.startswith("data:"):
                        assert '"initial_state"' in line
                        break


def _wait(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running_stack(tmp: Path, docker_client: docker.DockerClient, image: str) -> Iterator[Stack]:
    settings = Settings(
        # the fuzz sends many bad tokens on purpose (one route set per feature): no 429 for them
        server={
            "auth_token": STATIC,
            "max_body_size": BODY_LIMIT,
            "rate_limit": {"burst": 100_000},
        },
        registry={
            "health_check_interval": "1s",
            "node_timeout": "1h",
            "max_retries": 0,
            "command_timeout": "10s",
        },
        websocket={"ping_period": "5s"},
        auth={
            "enabled": True,
            "jwt_secret": "fuzz-jwt-secret-0123456789abcdef",
            "agent_token": AGENT_TOKEN,
        },
        logging={"format": "text"},
    )
    node = f"fuzz-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with ExitStack() as stack:
        coordinator = stack.enter_context(serve(create_coordinator(settings)))
        path = write_config(
            tmp,
            node,
            server={"host": "127.0.0.1", "port": port, "max_body_size": BODY_LIMIT},
            authorization={"enabled": True, "token": API_TOKEN},
            coordinator={
                "enabled": True,
                "url": coordinator,
                "token": AGENT_TOKEN,
                "advertise_address": "127.0.0.1",
                "heartbeat_interval": "1h",  # a fuzzed DELETE of the node stays deleted
            },
        )
        stack.callback(release_disks, tmp)  # after the containers: a fuzzed limits.disk
        stack.callback(remove_node, docker_client, node)
        agent = stack.enter_context(
            serve(create_agent(load_config(path), config_path=path), port=port)
        )
        operator = {"Authorization": f"Bearer {STATIC}"}
        _wait(
            lambda: (
                httpx.get(f"{coordinator}/api/v1/nodes/{node}", headers=operator).status_code == 200
            ),
            "the agent's enrolment",
        )
        server = "fuzzed"
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        spec = {
            "id": server,
            "image": image,
            "startup_command": SERVE,
            "labels": {"lightd.test": node},
        }
        created = httpx.post(f"{agent}/containers", json=spec, headers=auth, timeout=60)
        assert created.status_code == 202, created.text
        _wait(
            lambda: (
                httpx.get(f"{agent}/containers/{server}/status", headers=auth).json()["state"]
                == "running"
            ),
            "the server to run",
            60,
        )
        ran = httpx.post(
            f"{coordinator}/api/v1/nodes/{node}/containers/{server}/restart",
            headers=operator,
            timeout=60,
        )
        assert ran.status_code == 200 and ran.json()["status"] == "success", ran.text
        yield Stack(coordinator, agent, node, server, ran.json()["id"])
