"""The console through the coordinator: a real coordinator, a real ``lightd run`` agent, the
real engine, and the ``containers console`` verb driven as a subprocess through its stdin.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from lightd_coordinator.main import create_app
from tests.harness.servers import serve
from tests.harness.sse import following
from tests.integration.fleet import (
    STATIC,
    AgentProcess,
    coordinator_settings,
    operator,
    start_agent,
    wait_until,
)

pytestmark = pytest.mark.docker

CLI = str(Path(sys.executable).with_name("lightd-coordinator"))
ECHO = "trap 'exit 0' TERM; while read line; do echo \"got: $line\"; done"


def _state(client: httpx.Client, node: str, server: str) -> str:
    result = client.get(f"/api/v1/nodes/{node}/containers/{server}").json()
    return str(result["data"]["state"]) if result["status"] == "success" else ""


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _expect(lines: queue.Queue[str], wanted: str, seen: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not in {seen[-20:]}"
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            continue


def test_console_through_the_coordinator_and_the_cli(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    app = create_app(coordinator_settings())
    agent: AgentProcess | None = None
    with serve(app) as base, operator(base) as client:
        try:
            agent = start_agent(tmp_path, base, "console", allow_exec=False)
            node = agent.node_id
            wait_until(lambda: client.get(f"/api/v1/nodes/{node}").status_code == 200)
            spec = {"id": "echo", "image": "lightd-test-busybox:latest", "startup_command": ECHO}
            created = client.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert created.json()["status"] == "success", created.text
            wait_until(lambda: _state(client, node, "echo") == "running", 60, what="running")
            route = f"/api/v1/nodes/{node}/containers/echo"

            # the REST route, and its answer in the relayed log stream
            with following(client, f"{route}/logs", {"follow": "true"}) as follow:
                assert follow.status == 200
                sent = client.post(f"{route}/console", json={"command": "say hello"})
                assert sent.status_code == 200, sent.text
                assert sent.json()["status"] == "success", sent.text
                assert "sent 10 bytes" in sent.json()["output"]
                wait_until(lambda: "got: say hello" in follow.logs(), 30, what="the answer")
                blank = client.post(f"{route}/console", json={"command": ""})
                assert blank.json()["status"] == "success"
                wait_until(lambda: "got: " in follow.logs(), 30, what="the blank answer")
                # the longest command: its answer passes the relay whole (4101 characters)
                longest = "x" * 4096
                assert client.post(f"{route}/console", json={"command": longest}).status_code == 200
                wait_until(lambda: f"got: {longest}" in follow.logs(), 30, what="a long line")
            refused = client.post(f"{route}/console", json={"command": "a\nb"})
            assert refused.status_code == 422 and "newline" in refused.text
            unknown = client.post(
                f"/api/v1/nodes/{node}/containers/nope/console", json={"command": "x"}
            )
            assert unknown.json()["status"] == "failed"
            assert "nope" in unknown.json()["output"]

            # the CLI: tails the stream, sends each typed line, ends cleanly at EOF
            console = subprocess.Popen(
                [CLI, "containers", "console", node, "echo", "--url", base, "--tail", "0"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "LIGHTD_COORD_TOKEN": STATIC},
            )
            assert console.stdin is not None and console.stdout is not None
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=_lines, args=(console.stdout, lines), daemon=True).start()
            seen: list[str] = []
            try:
                console.stdin.write("from the cli\n")
                console.stdin.flush()
                _expect(lines, "got: from the cli", seen)
                console.stdin.write("bad\x07line\n")  # refused by the coordinator, goes on
                console.stdin.write("still here\n")
                console.stdin.flush()
                _expect(lines, "got: still here", seen)
                console.stdin.close()
                assert console.wait(timeout=30) == 0
                stderr = console.stderr.read() if console.stderr else ""
                assert "not sent" in stderr and "control character" in stderr, stderr
            finally:
                if console.poll() is None:
                    console.kill()
                    console.wait()
                for pipe in (console.stdin, console.stdout, console.stderr):
                    if pipe is not None and not pipe.closed:
                        pipe.close()

            # a stopped server: the command fails with the agent's reason
            client.post(f"{route}/stop")
            wait_until(lambda: _state(client, node, "echo") == "stopped", 60, what="stopped")
            stopped = client.post(f"{route}/console", json={"command": "hi"})
            assert stopped.json()["status"] == "failed"
            assert "needs it running" in stopped.json()["output"]
        finally:
            if agent is not None:
                client.delete(f"/api/v1/nodes/{agent.node_id}/containers/echo")
                agent.stop()
                for container in docker_client.containers.list(
                    all=True, filters={"label": f"lightd.node={agent.node_id}"}
                ):
                    container.remove(force=True)
