"""How the agent builds and stops containers: startup commands against an image's ENTRYPOINT,
and the stop grace Docker gets (whole seconds, rounded up)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from lightd_agent.config import DockerSection
from lightd_agent.docker_backend import DockerBackend, stop_seconds
from tests.agent.conftest import SERVE, Agent
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
