"""How the agent builds and stops containers: startup commands against an image's ENTRYPOINT,
the stop grace Docker gets (whole seconds, rounded up), and ``docker.scope`` keeping agents
with one node id apart on one engine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from lightd_agent.config import DockerSection
from lightd_agent.docker_backend import DockerBackend, stop_seconds
from tests.agent.conftest import SERVE, Agent, AgentFactory
from tests.harness.docker import Cleanup


@pytest.fixture
def entrypoint_image(
    tmp_path: Path, docker_client: docker.DockerClient, docker_cleanup: Cleanup, test_image: str
) -> Iterator[str]:
    """The busybox image with an ENTRYPOINT that prints a marker and exits (built locally)."""
    tag = f"lightd-test-entrypoint:{docker_cleanup.value}"
    context = tmp_path / "entrypoint-image"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f'FROM {test_image}\nENTRYPOINT ["/bin/echo", "entrypoint-ran"]\n'
    )
    docker_client.images.build(
        path=str(context), tag=tag, labels=dict(docker_cleanup.labels), rm=True, forcerm=True
    )
    try:
        yield tag
    finally:
        docker_cleanup.remove_all()
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.mark.docker
def test_startup_command_replaces_the_images_entrypoint(
    entrypoint_image: str, agent: Agent
) -> None:
    as_string = agent.install("shell", entrypoint_image, startup_command=f"echo by-sh; {SERVE}")
    assert as_string["state"] == "running", as_string
    as_list = agent.install(
        "argv", entrypoint_image, startup_command=["sh", "-c", f"echo by-argv; {SERVE}"]
    )
    assert as_list["state"] == "running", as_list
    for server, marker in (("shell", "by-sh"), ("argv", "by-argv")):
        logs = agent.client.get(f"/containers/{server}/logs").text
        assert marker in logs and "entrypoint-ran" not in logs, (server, logs)
        result = agent.client.post(f"/containers/{server}/exec", json={"command": "echo alive"})
        assert result.json()["output"] == "alive\n"
    # no startup_command: the image runs as built, ENTRYPOINT and all
    agent.client.post(
        "/containers",
        json=agent.spec("as-built", entrypoint_image, restart_policy={"enabled": False}),
    ).raise_for_status()
    agent.wait_state("as-built", "crashed")
    assert "entrypoint-ran" in agent.client.get("/containers/as-built/logs").text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, 0), (0.001, 1), (0.5, 1), (1, 1), (1.2, 2), (9.99, 10), (10, 10)],
)
def test_stop_grace_rounds_up_to_whole_seconds(seconds: float, expected: int) -> None:
    assert stop_seconds(seconds) == expected


def test_backend_stop_never_turns_a_short_grace_into_a_kill() -> None:
    class Recorder:
        timeout: Any = None

        def stop(self, container: str, timeout: int) -> None:
            self.timeout = timeout

    class Client:
        api = Recorder()

    backend = DockerBackend(DockerSection(), node_id="unit-node")
    backend._client = Client()  # type: ignore[assignment]
    backend.available = True
    backend.stop_sync("c1", 0.5)  # "500ms": Docker must still send SIGTERM and wait 1 s
    assert Client.api.timeout == 1
    backend.stop_sync("c1", 0.0)
    assert Client.api.timeout == 0


def test_a_scope_is_in_every_name_and_label_and_in_the_ownership_check() -> None:
    plain = DockerBackend(DockerSection(), node_id="agent-1")
    scoped = DockerBackend(DockerSection(scope="clone-b"), node_id="agent-1")
    assert plain.container_name("web") == "lightd-agent-1-web"
    assert scoped.container_name("web") == "lightd-clone-b-agent-1-web"
    assert scoped.container_name("web", "install") == "lightd-clone-b-agent-1-web-install"
    assert scoped.volume_name("web") == "lightd-clone-b-agent-1-web-data"
    assert plain.owned_filter() == ["lightd.node=agent-1"]
    assert scoped.owned_filter("web") == [
        "lightd.node=agent-1",
        "lightd.scope=clone-b",
        "lightd.server=web",
    ]
    with pytest.raises(ValueError, match="scope"):
        DockerSection(scope="Not A Name")


@pytest.mark.docker
def test_agents_with_one_node_id_in_two_scopes_share_an_engine_apart(
    make_agent: AgentFactory, docker_client: docker.DockerClient, test_image: str, tmp_path: Path
) -> None:
    """Two compose clusters on one engine: same node id, same server id, nothing shared."""
    node = f"test-{uuid.uuid4().hex[:10]}"

    def start(scope: str) -> Agent:
        storage = tmp_path / scope
        storage.mkdir()
        return make_agent(node, docker={"scope": scope}, storage={"base_path": str(storage)})

    one = start("one")
    assert one.install("web", test_image, startup_command=SERVE)["state"] == "running"
    two = start("two")
    assert two.client.get("/containers").json()["containers"] == []  # not one's server
    assert two.install("web", test_image, startup_command=SERVE)["state"] == "running"

    found = docker_client.containers.list(all=True, filters={"label": f"lightd.node={node}"})
    by_scope = {c.labels["lightd.scope"]: c for c in found if c.labels["lightd.role"] == "server"}
    assert sorted(by_scope) == ["one", "two"]
    assert by_scope["one"].name == f"lightd-one-{node}-web"
    assert by_scope["two"].name == f"lightd-two-{node}-web"

    deleted = two.client.delete("/containers/web")
    assert deleted.status_code in (200, 202, 204), deleted.text
    assert one.status("web")["state"] == "running"
    by_scope["one"].reload()
    assert by_scope["one"].status == "running"


@pytest.mark.parametrize("limit", ["1s", "2500ms", "3s", "30s"])
def test_the_clients_read_timeout_never_races_the_call_limit(limit: str) -> None:
    # call() must answer a hung engine with the limit the operator set: the Docker client's
    # own read timeout is a later backstop, never the same instant (a race CI once lost)
    backend = DockerBackend(DockerSection(call_timeout=limit), node_id="unit-node")
    assert backend.socket_seconds >= backend.call_seconds + 1
    assert backend.socket_seconds == int(backend.socket_seconds)
