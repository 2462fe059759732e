"""Crashes are seen on Docker's event stream (not by polling) and handled by the crash policy."""

from __future__ import annotations

import docker
import pytest

from tests.agent.conftest import SERVE, Agent
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


def test_crash_is_restarted_until_the_policy_gives_up(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent.install(
        "crashy",
        test_image,
        startup_command="sleep 0.3; echo dying; exit 3",
        restart_policy={"max_restarts": 2, "window": "60s"},
    )
    kinds = agent.wait_kinds(
        "crashy",
        [
            "Started",
            "CreatingContainer",
            "Ready",
            "Running",
            "Crashed",
            "Running",
            "Crashed",
            "Running",
            "Crashed",
        ],
    )
    status = agent.wait_state("crashy", "crashed")
    assert status["exit_code"] == 3
    assert "exited unexpectedly with code 3" in status["error"]
    assert "restart policy allows 2" in status["error"]
    # the policy gave up: the container stays exited, and nothing more is published
    container = docker_client.containers.get(status["container_id"])
    wait_until(lambda: (container.reload(), container.status)[1] == "exited")
    assert agent.kinds("crashy") == kinds
    crashed = [e for e in agent.events if e.kind == "Crashed"]
    assert [e.exit_code for e in crashed] == [3, 3, 3]


def test_disabled_policy_leaves_a_crash_crashed(agent: Agent, test_image: str) -> None:
    agent.install(
        "once",
        test_image,
        startup_command="sleep 0.3; exit 1",
        restart_policy={"enabled": False},
    )
    agent.wait_kinds("once", ["Started", "CreatingContainer", "Ready", "Running", "Crashed"])
    status = agent.wait_state("once", "crashed")
    assert "restart policy is disabled" in status["error"]
    # a crashed server can be started again by hand
    assert agent.client.post("/containers/once/start").json()["state"] == "running"


def test_container_killed_outside_the_agent_is_a_crash_and_restarted(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    status = agent.install("victim", test_image, startup_command=SERVE)
    docker_client.containers.get(status["container_id"]).kill()
    agent.wait_kinds(
        "victim", ["Started", "CreatingContainer", "Ready", "Running", "Crashed", "Running"]
    )
    status = agent.wait_state("victim", "running")
    assert status["restarts"] == 1
    assert docker_client.containers.get(status["container_id"]).status == "running"


def test_oom_kill_is_a_crash_that_says_so(agent: Agent, test_image: str) -> None:
    agent.install(
        "hungry",
        test_image,
        # one process (exec) that needs 40 MB at once: the kernel's OOM killer can only pick
        # the container's main process. (A pipeline in a subshell let it pick a helper
        # process instead now and then, leaving the shell alive and the test waiting.)
        startup_command="sleep 0.2; exec dd if=/dev/zero of=/dev/null bs=40M count=100",
        limits={"memory": "8m"},
        restart_policy={"enabled": False},
    )
    agent.wait_kinds("hungry", ["Started", "CreatingContainer", "Ready", "Running", "Crashed"])
    status = agent.wait_state("hungry", "crashed")
    assert status["exit_code"] == 137
    assert "out of memory" in status["error"]
    assert "limits.memory" in status["error"]
