"""Proves the harness: a real container is created, inspected and removed through the SDK."""

from __future__ import annotations

import docker
import httpx
import pytest
from fastapi import FastAPI

from tests.harness.docker import TEST_LABEL, Cleanup
from tests.harness.servers import serve

pytestmark = pytest.mark.docker


def test_create_inspect_remove_a_real_container(
    docker_client: docker.DockerClient, test_image: str, docker_cleanup: Cleanup
) -> None:
    container = docker_client.containers.run(
        test_image,
        ["sh", "-c", "echo harness-ok; sleep 30"],
        detach=True,
        labels=docker_cleanup.labels,
    )
    container.reload()
    assert container.status == "running"
    assert container.labels[TEST_LABEL] == docker_cleanup.value
    assert [c.id for c in docker_cleanup.containers()] == [container.id]
    container.stop(timeout=0)
    assert b"harness-ok" in container.logs()
    docker_cleanup.remove_all()
    assert docker_cleanup.containers() == []


def test_cleanup_removes_what_a_test_left(
    docker_client: docker.DockerClient, test_image: str
) -> None:
    marker = Cleanup(docker_client)
    docker_client.containers.create(test_image, ["true"], labels=marker.labels)
    assert len(marker.containers()) == 1
    marker.remove_all()
    assert marker.containers() == []


def test_real_server_on_loopback() -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    with serve(app) as base_url:
        assert httpx.get(f"{base_url}/ping").json() == {"pong": "yes"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/ping", timeout=2)
