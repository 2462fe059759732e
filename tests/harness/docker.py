"""Real Docker for tests: a client that must work, the busybox test image, per-test cleanup.

Nothing here skips. If the engine is not reachable the fixture fails with a message saying how
to start one (``.ci/run`` installs and starts it in CI).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

TEST_IMAGE = "lightd-test-busybox:latest"
"""Debian's static busybox on scratch: sh, httpd, wget, sleep. Built locally, never pulled."""

TEST_LABEL = "lightd.test"
"""Every container/volume a test creates carries this label with the test's own value."""

IMAGE_DIR = Path(__file__).resolve().parents[1] / "images" / "busybox"


class DockerUnavailable(RuntimeError):
    """The tests need a real Docker engine and none answered."""


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(
            "these tests need a real Docker engine and none answered "
            f"({exc}). Start one (`dockerd &`) or run .ci/run, which installs and starts it."
        ) from exc
    return client


def ensure_test_image(client: docker.DockerClient) -> str:
    """Build the busybox test image once if it is not there yet; return its tag."""
    try:
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox")
    if busybox is None:
        raise DockerUnavailable(
            "the test image needs Debian's static busybox: apt-get install busybox-static"
        )
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(IMAGE_DIR / "Dockerfile", Path(tmp) / "Dockerfile")
        shutil.copy(busybox, Path(tmp) / "busybox")
        client.images.build(path=tmp, tag=TEST_IMAGE, rm=True, forcerm=True)
    return TEST_IMAGE


class Cleanup:
    """Removes, on teardown, everything that carries this test's label, even after a failure."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.value = uuid.uuid4().hex[:12]
        self.labels = {TEST_LABEL: self.value}

    @property
    def selector(self) -> str:
        return f"{TEST_LABEL}={self.value}"

    def containers(self) -> list[Container]:
        return list(self.client.containers.list(all=True, filters={"label": self.selector}))

    def remove_all(self) -> None:
        for container in self.containers():
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        for volume in self.client.volumes.list(filters={"label": self.selector}):
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:
                pass


def cleanup(client: docker.DockerClient) -> Iterator[Cleanup]:
    marker = Cleanup(client)
    try:
        yield marker
    finally:
        marker.remove_all()
