"""The Docker engine going away and coming back, and a Docker that hangs.

The engine on this machine is shared with other tests running at the same time, so stopping
dockerd is not an option. Instead the agent under test reaches Docker through a Unix-socket
proxy (``tests/agent/proxy.py``) set as its ``docker.socket_path``: closing the proxy refuses
new connections and cuts open ones, which is exactly what the agent sees when the engine stops
(connection refused, event stream broken); reopening it is the engine starting again. Stalling
it leaves requests unanswered, like a hung engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, STUBBORN, Agent
from tests.agent.proxy import DockerProxy
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[DockerProxy]:
    proxy = DockerProxy(tmp_path / "docker.sock")
    proxy.open()
    try:
        yield proxy
    finally:
        proxy.close()


def _wait_reachable(agent: Agent, reachable: bool, timeout: float = 20) -> dict[str, Any]:
    def health() -> dict[str, Any] | None:
        answer: dict[str, Any] = httpx.get(agent.url + "/health", timeout=5).json()
        return answer if answer["docker"]["reachable"] is reachable else None

    result: dict[str, Any] = wait_until(health, timeout, what=f"docker reachable {reachable}")
    return result


def _refusals(caplog: pytest.LogCaptureFixture, status: int) -> list[logging.LogRecord]:
    """The API's warning lines for the ``status`` answers it gave (api/errors.py)."""
    return [
        r
        for r in caplog.records
        if r.name == "lightd_agent.api"
        and r.levelno == logging.WARNING
        and getattr(r, "status_code", None) == status
    ]


def test_engine_lost_and_back(
    make_agent: Any,
    proxy: DockerProxy,
    test_image: str,
    docker_client: docker.DockerClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lightd_agent.api")
    agent: Agent = make_agent(docker={"socket_path": str(proxy.path), "call_timeout": "3s"})
    status = agent.install("steady", test_image, startup_command=SERVE)
    container_id = status["container_id"]

    proxy.close()  # the engine "stops"
    health = _wait_reachable(agent, False)
    assert health["status"] == "degraded"
    assert health["docker"]["error"]
    for method, path in [
        ("GET", "/containers"),
        ("GET", "/containers/steady/status"),
        ("POST", "/containers/steady/stop"),
    ]:
        response = agent.client.request(method, path)
        assert response.status_code == 503, (path, response.text)
        assert "unreachable" in response.json()["detail"]
    response = agent.client.post("/containers", json=agent.spec("late", test_image))
    assert response.status_code == 503
    # every 503 is in the agent's log at warning, with its reason and its server
    logged = _refusals(caplog, 503)
    fields = [
        (getattr(r, "method", ""), getattr(r, "path", ""), getattr(r, "server", None))
        for r in logged
    ]
    assert fields == [
        ("GET", "/containers", None),
        ("GET", "/containers/steady/status", "steady"),
        ("POST", "/containers/steady/stop", "steady"),
        ("POST", "/containers", "late"),
    ]
    for record, (method, path, _) in zip(logged, fields, strict=True):
        assert "unreachable" in getattr(record, "reason", "")
        assert record.getMessage().startswith(f"answered 503 to {method} {path} (server ")
    # while the agent cannot see it, the server's container dies
    docker_client.containers.get(container_id).kill()

    proxy.open()  # the engine "starts" again: the agent reconnects by itself
    health = _wait_reachable(agent, True)
    assert health["status"] == "ok"
    # the death it missed is found on reconnect and handled by the crash policy
    kinds = agent.wait_kinds(
        "steady", ["Started", "CreatingContainer", "Ready", "Running", "Crashed", "Running"]
    )
    assert kinds.count("Crashed") == 1
    status = agent.wait_state("steady", "running")
    assert status["restarts"] == 1
    # and Docker's event stream is followed again: a new crash is seen at once
    docker_client.containers.get(container_id).kill()
    agent.wait_kinds("steady", [*kinds, "Crashed", "Running"])
    assert agent.client.post("/containers/steady/stop").json()["state"] == "stopped"


def test_hung_docker_call_times_out_instead_of_wedging(
    make_agent: Any, proxy: DockerProxy, test_image: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lightd_agent.api")
    # 3s, not 1s: a container start alone can take over a second on a loaded 2-core machine
    agent: Agent = make_agent(docker={"socket_path": str(proxy.path), "call_timeout": "3s"})
    agent.install("hung", test_image, startup_command=STUBBORN)

    proxy.stall()
    response = agent.client.post("/containers/hung/stop", json={"timeout": "0s"})
    assert response.status_code == 504, response.text
    assert "did not answer within" in response.json()["detail"]
    [logged] = _refusals(caplog, 504)
    assert logged.getMessage() == (
        f"answered 504 to POST /containers/hung/stop (server hung): {response.json()['detail']}"
    )
    assert agent.kinds("hung")[-1] == "Error"
    error = agent.events[-1]
    assert error.error == "timeout"

    proxy.close()
    proxy.open()
    _wait_reachable(agent, True)
    # not wedged: the server's lock was released and the next action works
    status = agent.wait_state("hung", "running", "stopped")
    assert status["state"] != "stopping"
    response = agent.client.post("/containers/hung/kill")
    assert response.status_code == 200, response.text
    # Docker may have carried out the stalled stop after all: then the container died while
    # the server was running again, which is a crash, and killing a crashed server leaves it
    # crashed. Either way it is not running and not wedged in ``stopping``.
    assert response.json()["state"] in ("stopped", "crashed"), response.text


def test_agent_starts_without_docker_and_connects_later(
    make_agent: Any, tmp_path: Path, test_image: str
) -> None:
    proxy = DockerProxy(tmp_path / "late.sock")  # not listening yet: no engine
    try:
        agent: Agent = make_agent(docker={"socket_path": str(proxy.path)})
        health = _wait_reachable(agent, False)
        assert health["status"] == "degraded"
        response = agent.client.post("/containers", json=agent.spec("early", test_image))
        assert response.status_code == 503
        assert "reconnects by itself" in response.json()["detail"]
        proxy.open()
        _wait_reachable(agent, True)
        assert agent.install("early", test_image, startup_command=SERVE)["state"] == "running"
    finally:
        proxy.close()
