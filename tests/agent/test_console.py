"""The console on the real engine: stdin in through Docker's attach, output followed and
throttled, install logs kept across a restart of the agent process.

Each server is a busybox shell: a ``while read`` loop answers what the console writes, a
``yes`` floods its output; the agent runs in this process (uvicorn on loopback), except for the
restart test, which runs ``lightd run`` twice on one storage directory.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import docker
import httpx
import pytest

from lightd_agent.backend.docker_translate import Naming, info_from_attrs
from lightd_agent.backend.lines import cut_marker
from lightd_shared.containers import ContainerSpec
from tests.agent.conftest import SERVE, Agent, AgentFactory, write_config
from tests.agent.test_recovery import AgentProcess
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.harness.sse import following
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker

ECHO = "trap 'exit 0' TERM; while read line; do echo \"got: $line\"; done"
"""A server that answers every line of its stdin."""


def _console(agent: Agent, server: str, command: str) -> httpx.Response:
    return agent.client.post(f"/containers/{server}/console", json={"command": command})


def test_console_reaches_stdin_and_the_answer_shows_in_the_follow(
    agent: Agent, test_image: str
) -> None:
    assert agent.install("echo", test_image, startup_command=ECHO)["state"] == "running"
    with following(agent.client, "/containers/echo/logs", {"follow": "true"}) as follow:
        assert follow.status == 200
        sent = _console(agent, "echo", "say hello")
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"id": "echo", "bytes": len(b"say hello\n")}
        wait_until(lambda: "got: say hello" in follow.logs(), 20, what="the answer")
        blank = _console(agent, "echo", "")  # Enter alone: a blank answer
        assert blank.status_code == 200, blank.text
        long = "x" * 4000
        assert _console(agent, "echo", long).status_code == 200
        wait_until(lambda: f"got: {long}" in follow.logs(), 20, what="the long answer")
        assert follow.logs().index("got: ") < follow.logs().index(f"got: {long}")
    # the answer is also in the plain log, and a new follow starts with it (the backlog)
    assert "got: say hello\n" in agent.client.get("/containers/echo/logs").text
    with following(agent.client, "/containers/echo/logs", {"follow": "true", "tail": "1"}) as f:
        wait_until(lambda: f.logs() == [f"got: {long}"], 20, what="a backlog of one line")

    # what the console refuses, each with its reason; nothing is written
    newline = _console(agent, "echo", "two\nlines")
    assert newline.status_code == 422
    assert "a newline (U+000A at position 3)" in newline.json()["detail"]
    control = _console(agent, "echo", "bell\x07")
    assert control.status_code == 422 and "control character" in control.json()["detail"]
    too_long = _console(agent, "echo", "y" * 4097)
    assert too_long.status_code == 422 and "command" in too_long.json()["detail"]
    assert _console(agent, "nope", "hi").status_code == 404
    too_much = agent.client.get("/containers/echo/logs", params={"follow": "true", "tail": 20000})
    assert too_much.status_code == 422 and "console.max_backlog" in too_much.json()["detail"]
    assert agent.client.post("/containers/echo/stop").status_code == 200
    stopped = _console(agent, "echo", "hi")
    assert stopped.status_code == 409
    assert "is stopped; the console needs it running" in stopped.json()["detail"]
    anonymous = httpx.post(f"{agent.url}/containers/echo/console", json={"command": "hi"})
    assert anonymous.status_code == 401


def test_blank_and_long_lines_come_whole_and_overlong_ones_cut_with_a_marker(
    agent: Agent, test_image: str
) -> None:
    # Docker splits lines over 16 KiB into pieces: the follow joins them again
    script = (
        "head -c 40000 /dev/zero | tr '\\0' a; echo; echo; echo between; "
        "head -c 70000 /dev/zero | tr '\\0' b; echo; echo end; " + SERVE
    )
    agent.install("long", test_image, startup_command=script)
    with following(agent.client, "/containers/long/logs", {"follow": "true"}) as follow:
        wait_until(lambda: "end" in follow.logs(), 20, what="the whole output")
        logs = follow.logs()
    start = logs.index("a" * 40000)
    assert logs[start : start + 5] == [
        "a" * 40000,
        "",
        "between",
        "b" * 65536 + cut_marker(70000 - 65536),
        "end",
    ]


def test_a_noisy_server_is_throttled_and_the_agent_stays_responsive(
    make_agent: AgentFactory, test_image: str
) -> None:
    agent = make_agent(console={"throttle_lines": 100, "throttle_period": "100ms"})
    agent.install("quiet", test_image, startup_command=SERVE)
    # as fast as it can, within a quarter of a core (so it does not take the host)
    agent.install("noisy", test_image, startup_command="yes noise", limits={"cpu": 0.25})

    def power_round() -> float:
        began = time.monotonic()
        assert agent.client.post("/containers/quiet/kill").status_code == 200
        assert agent.client.post("/containers/quiet/start").status_code == 200
        assert agent.client.get("/containers/quiet/status").status_code == 200
        return time.monotonic() - began

    baseline = statistics.median(power_round() for _ in range(3))
    with following(agent.client, "/containers/noisy/logs", {"follow": "true"}) as follow:
        wait_until(lambda: follow.dropped() > 0, 30, what="the throttle to drop lines")
        during = statistics.median(power_round() for _ in range(3))
        began = time.monotonic()
        received_before, dropped_before = len(follow.logs()), follow.dropped()
        wait_until(
            lambda: follow.dropped() - dropped_before >= 2000, 60, what="2000 more lines dropped"
        )
        window = time.monotonic() - began
        passed = len(follow.logs()) - received_before
    # at most 100 lines per 100 ms got through (two windows' worth of slack at the edges);
    # the rest were dropped and counted, not queued
    assert passed <= 100 * (window / 0.1 + 2), (passed, window)
    assert "noise" in follow.logs()
    # another server's power actions answer in the time they take without the flood
    assert during <= 5 * baseline, (during, baseline)


def test_install_log_is_followed_live_and_survives_an_agent_restart(
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    node = f"test-{time.time_ns() % 10**10:010d}"
    port = free_port()
    config = write_config(tmp_path, node, server={"host": "127.0.0.1", "port": port})
    first = AgentProcess(config, port, tmp_path / "agent.log")
    second: AgentProcess | None = None
    gate = tmp_path / "storage" / "volumes" / "inst" / "go"
    script = (
        "echo step one; echo; echo step two; "
        "while [ ! -e /data/go ]; do sleep 0.1; done; echo step three"
    )
    try:
        first.start()
        body = {
            "id": "inst",
            "image": test_image,
            "labels": dict(docker_cleanup.labels),
            "install_script": script,
            "startup_command": SERVE,
        }
        assert first.client.post("/containers", json=body).status_code == 202
        path = "/containers/inst/install-log"
        wait_until(
            lambda: first.client.get(path).status_code == 200, 30, what="the install log to start"
        )
        with following(first.client, path, {"follow": "true"}) as follow:
            # lines show while the install still waits for its gate
            wait_until(lambda: "step two" in follow.logs(), 30, what="lines before the end")
            assert first.state("inst")["state"] == "installing"
            assert follow.logs()[:3] == ["step one", "", "step two"]
            gate.touch()
            wait_until(follow.ended.is_set, 30, what="the follow to end with the install")
        assert follow.logs() == ["step one", "", "step two", "step three"]
        assert follow.events[-1][0] == "end"
        assert json.loads(follow.events[-1][1]) == {"server": "inst", "which": "install"}
        first.wait_state("inst", "running")
        kept = first.client.get(path)
        assert kept.text == "step one\n\nstep two\nstep three\n"
        assert kept.headers["x-lightd-install-log"] == "install"
        missing = first.client.get(path, params={"which": "reinstall"})
        assert missing.status_code == 404 and "no reinstall log" in missing.json()["detail"]
        bad = first.client.get(path, params={"which": "other"})
        assert bad.status_code == 422
        first.stop()

        second = AgentProcess(config, port, tmp_path / "agent.log")
        second.start()
        again = second.client.get(path, params={"which": "install"})
        assert again.status_code == 200
        assert again.text == "step one\n\nstep two\nstep three\n"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        for container in docker_client.containers.list(
            all=True, filters={"label": f"lightd.node={node}"}
        ):
            container.remove(force=True)


def test_an_engine_answer_without_open_stdin_reads_as_such() -> None:
    assert info_from_attrs({"Id": "c1", "Config": {"OpenStdin": True}}).stdin_open
    assert not info_from_attrs({"Id": "c1", "Config": {}}).stdin_open


def test_a_server_created_before_the_console_gets_a_409_saying_reinstall(
    make_agent: AgentFactory,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    # the container as an agent before the console made it: the same create, without stdin
    node = f"test-{time.time_ns() % 10**10:010d}"
    spec = ContainerSpec.model_validate(
        {
            "id": "old",
            "image": test_image,
            "startup_command": SERVE,
            "labels": docker_cleanup.labels,
        }
    )
    kwargs = Naming(node).server_kwargs(spec)
    for key in ("stdin_open", "tty", "detach"):
        kwargs.pop(key)
    docker_client.containers.create(test_image, **kwargs)
    agent = make_agent(node=node)  # adopts it at start
    wait_until(lambda: agent.client.get("/containers/old").status_code == 200, 30, what="adopted")
    assert agent.client.post("/containers/old/start").status_code == 200
    refused = _console(agent, "old", "hi")
    assert refused.status_code == 409
    assert "created before the console existed" in refused.json()["detail"]
    assert "reinstall" in refused.json()["detail"].lower()
    # a reinstall makes its container anew, with stdin open: the console takes the line
    before = agent.status("old")["container_id"]
    assert agent.client.post("/containers/old/reinstall").status_code == 202
    wait_until(
        lambda: (s := agent.status("old"))["state"] == "running" and s["container_id"] != before,
        60,
        what="the reinstalled server running",
    )
    sent = _console(agent, "old", "now")
    assert sent.status_code == 200, sent.text
    container = docker_client.containers.get(f"lightd-{node}-old")
    assert container.attrs["Config"]["OpenStdin"] is True
