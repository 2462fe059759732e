"""Start failures on the real engine: each is said once, none is swallowed; install output in
the order it was written."""

from __future__ import annotations

import socket

import pytest

from tests.agent.conftest import SERVE, Agent
from tests.harness.servers import free_port

pytestmark = pytest.mark.docker


def test_a_port_taken_during_the_install_is_one_error(agent: Agent, test_image: str) -> None:
    port = free_port()
    response = agent.client.post(
        "/containers",
        json=agent.spec(
            "portly",
            test_image,
            startup_command=SERVE,
            install_script="sleep 2",
            ports=[{"container": 8080, "host": port}],
        ),
    )
    assert response.status_code == 202, response.text
    # the port was free at the create; something else takes it before the start
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", port))
        holder.listen()
        agent.wait_kinds("portly", ["Started", "CreatingContainer", "Ready", "Error"])
        status = agent.wait_state("portly", "ready")
    kinds = agent.kinds("portly")
    assert kinds == ["Started", "CreatingContainer", "Ready", "Error"], kinds
    errors = [e for e in agent.events if e.server == "portly" and e.kind == "Error"]
    assert len(errors) == 1 and "starting after the install failed" in (errors[0].data or "")
    assert "already" in status["error"] or "in use" in status["error"], status


def test_an_engine_error_on_start_is_published_not_swallowed(agent: Agent, test_image: str) -> None:
    status = agent.install(
        "nobinary", test_image, startup_command=["/no-such-binary"], start_on_completion=False
    )
    assert status["state"] == "ready"
    response = agent.client.post("/containers/nobinary/start")
    assert response.status_code == 409, response.text
    assert "cannot start server 'nobinary'" in response.json()["detail"]
    assert agent.kinds("nobinary")[-1] == "Error"
    error = [e for e in agent.events if e.server == "nobinary"][-1]
    assert error.state == "ready" and "start failed: cannot start server" in (error.data or "")
    # resynced from Docker: not running, still startable once fixed
    assert agent.status("nobinary")["state"] == "ready"


def test_install_output_keeps_the_order_it_was_written_in(agent: Agent, test_image: str) -> None:
    script = (
        "i=1; while [ $i -le 12 ]; do "
        "if [ $((i % 2)) -eq 1 ]; then echo out$i; else echo err$i >&2; fi; "
        "i=$((i + 1)); done; exit 7"
    )
    status = agent.install("ordered", test_image, install_script=script)
    assert status["state"] == "failed"
    lines = status["error"].split("last lines of output:\n", 1)[1].splitlines()
    expected = [f"out{i}" if i % 2 else f"err{i}" for i in range(1, 13)]
    assert lines == expected, status["error"]


def test_an_install_without_output_says_so(agent: Agent, test_image: str) -> None:
    status = agent.install("quiet", test_image, install_script="exit 5")
    assert status["state"] == "failed"
    assert status["error"].endswith("last lines of output:\n(no output)"), status["error"]
