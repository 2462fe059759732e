"""Fixtures every test may use: real Docker, the busybox image, real servers on loopback.

And the session's leak check: every secret registered in :mod:`tests.harness.secrets` must be
absent from every log and captured output when the session ends (:mod:`tests.harness.leakcheck`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.harness import docker as docker_harness
from tests.harness import secrets
from tests.harness.docker import Cleanup
from tests.harness.redis import RedisServer, redis_server

pytest_plugins = ["pytester", "tests.harness.leakcheck"]


def pytest_configure(config: pytest.Config) -> None:
    secrets.register_known()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the real engine; fails (never skips) when there is none."""
    client = docker_harness.connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    """The busybox test image, built locally once per session."""
    return docker_harness.ensure_test_image(docker_client)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the root logger's handlers and level, and httpx's and httpcore's levels, after a
    test that configured a program's logging."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.fixture
def docker_cleanup(docker_client: docker.DockerClient) -> Iterator[Cleanup]:
    """Labels for this test's containers and volumes; all of them are removed on teardown."""
    yield from docker_harness.cleanup(docker_client)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh real Redis server for this test (fails, never skips, without redis-server)."""
    with redis_server(tmp_path / "redis") as server:
        yield server
