"""How the agent builds and stops containers: startup commands against an image's ENTRYPOINT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

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
