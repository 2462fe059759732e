"""Power actions on the real engine: each answers when done; graceful stop falls back to kill."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from tests.agent.conftest import SERVE, STUBBORN, Agent

pytestmark = pytest.mark.docker


def test_start_stop_restart_kill(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent.install("power", test_image, startup_command=SERVE, start_on_completion=False)

    started = agent.client.post("/containers/power/start")
    assert started.status_code == 200
    assert started.json()["state"] == "running"
    container = docker_client.containers.get(started.json()["container_id"])
    assert container.status == "running"

    stopped = agent.client.post("/containers/power/stop", json={"timeout": "5s"})
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"
    assert stopped.json()["exit_code"] == 0  # it handled SIGTERM: a graceful stop
    container.reload()
    assert container.status == "exited"

    restarted = agent.client.post("/containers/power/restart", json={"timeout": "5s"})
    assert restarted.status_code == 200
    assert restarted.json()["state"] == "running"
    first_start = restarted.json()["started_at"]
    again = agent.client.post("/containers/power/restart").json()
    assert again["state"] == "running"
    assert again["started_at"] != first_start

    killed = agent.client.post("/containers/power/kill")
    assert killed.status_code == 200
    assert killed.json()["state"] == "stopped"
    assert killed.json()["exit_code"] == 137
    container.reload()
    assert container.status == "exited"

    assert agent.kinds("power") == [
        "Started",
        "CreatingContainer",
        "Ready",
        "Running",
        "Stopped",
        "Running",  # restart from stopped: only a start
        "Stopped",
        "Running",
        "Stopped",
    ]
    # stops the agent asked for are never crashes
    assert "Crashed" not in agent.kinds("power")
    # the same action twice is answered, not refused
    assert agent.client.post("/containers/power/stop").json()["state"] == "stopped"


def test_graceful_stop_times_out_into_kill(agent: Agent, test_image: str) -> None:
    agent.install("stubborn", test_image, startup_command=STUBBORN)
    response = agent.client.post("/containers/stubborn/stop", json={"timeout": "1s"})
    assert response.status_code == 200
    status = response.json()
    assert status["state"] == "stopped"
    assert status["exit_code"] == 137  # SIGKILL after the 1 s grace period
    assert agent.kinds("stubborn")[-1] == "Stopped"
    assert "Crashed" not in agent.kinds("stubborn")


def test_power_actions_on_one_server_never_interleave(agent: Agent, test_image: str) -> None:
    agent.install("serial", test_image, startup_command=STUBBORN)
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(agent.client.post, "/containers/serial/stop", json={"timeout": "1s"}),
            pool.submit(agent.client.post, "/containers/serial/start"),
            pool.submit(agent.client.post, "/containers/serial/restart", json={"timeout": "1s"}),
            pool.submit(agent.client.post, "/containers/serial/kill"),
        ]
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    kinds = agent.kinds("serial")[4:]
    # serialised: states alternate cleanly, never two starts or two stops in a row
    assert kinds, kinds
    for before, after in itertools.pairwise(kinds):
        assert before != after, kinds
    assert set(kinds) <= {"Running", "Stopped"}
    assert agent.status("serial")["state"] == ("running" if kinds[-1] == "Running" else "stopped")


def test_start_while_installing_is_refused(agent: Agent, test_image: str) -> None:
    body = agent.spec("slow", test_image, install_script="sleep 2", startup_command=SERVE)
    assert agent.client.post("/containers", json=body).status_code == 202
    response = agent.client.post("/containers/slow/start")
    assert response.status_code == 409
    assert "installing" in response.json()["detail"]
    agent.wait_state("slow", "running")
