"""What an operator reads: /events (SSE with ids), logs (tail and follow), stats, exec, /health."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from tests.agent.conftest import SERVE, Agent
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


def _read_sse(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """The first ``count`` SSE messages (comment/ping lines skipped)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if current:
                messages.append(current)
                current = {}
                if len(messages) == count:
                    return messages
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        current[name] = value.removeprefix(" ")
    return messages


def test_events_stream_has_ids_and_resumes(agent: Agent, test_image: str) -> None:
    received: list[dict[str, str]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with agent.client.stream("GET", "/events", timeout=30) as response:
            assert response.status_code == 200
            subscribed.set()  # the route subscribes before it answers
            received.extend(_read_sse(response, 4))

    listener = threading.Thread(target=listen)
    listener.start()
    assert subscribed.wait(timeout=30)
    agent.install("watched", test_image, startup_command=SERVE)
    listener.join(timeout=30)
    assert [m["event"] for m in received] == ["Started", "CreatingContainer", "Ready", "Running"]
    ids = [int(m["id"]) for m in received]
    assert ids == sorted(ids) and len(set(ids)) == 4
    first = json.loads(received[0]["data"])
    assert first["server"] == "watched"
    assert first["kind"] == "Started"
    assert first["state"] == "installing"
    assert first["id"] == ids[0]
    assert first["timestamp"].endswith("Z")

    # a client that reconnects with Last-Event-ID gets what it missed, from there on
    headers = {"Last-Event-ID": str(ids[1])}
    with agent.client.stream("GET", "/events", headers=headers, timeout=30) as response:
        replay = _read_sse(response, 2)
    assert [m["event"] for m in replay] == ["Ready", "Running"]


def test_logs_tail_and_follow(agent: Agent, test_image: str) -> None:
    agent.install(
        "chatty",
        test_image,
        startup_command="for i in 1 2 3 4 5; do echo line $i; done; "
        "trap 'exit 0' TERM; while true; do echo tick; sleep 0.2; done",
    )
    wait_until(lambda: "tick" in agent.client.get("/containers/chatty/logs").text, 10)
    full = agent.client.get("/containers/chatty/logs").text
    assert full.startswith("line 1\nline 2\nline 3\nline 4\nline 5\n")
    tail = agent.client.get("/containers/chatty/logs", params={"tail": 2}).text
    assert len(tail.strip().splitlines()) == 2

    params = {"follow": "true", "tail": 0}
    with agent.client.stream("GET", "/containers/chatty/logs", params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = _read_sse(response, 3)
    assert [m["data"] for m in lines] == ["tick", "tick", "tick"]
    assert all(m["event"] == "log" for m in lines)


def test_stats_and_exec(agent: Agent, test_image: str) -> None:
    agent.install("busy", test_image, startup_command=SERVE, limits={"memory": "64m", "cpu": 0.5})
    stats = agent.client.get("/containers/busy/stats")
    assert stats.status_code == 200
    body = stats.json()
    assert body["memory_limit"] == 64 * 1024 * 1024
    assert body["memory_usage"] > 0
    assert body["cpu_percent"] >= 0
    assert body["network_rx_bytes"] >= 0

    ok = agent.client.post("/containers/busy/exec", json={"command": ["echo", "a b"]}).json()
    assert ok == {**ok, "status": "success", "exit_code": 0, "output": "a b\n"}
    failed = agent.client.post("/containers/busy/exec", json={"command": "echo oops; exit 5"})
    assert failed.json()["status"] == "failed"
    assert failed.json()["exit_code"] == 5
    assert failed.json()["output"] == "oops\n"
    slow = agent.client.post(
        "/containers/busy/exec", json={"command": "sleep 5", "timeout": "300ms"}
    )
    assert slow.status_code == 200
    assert slow.json()["status"] == "timeout"
    assert slow.json()["exit_code"] is None

    agent.client.post("/containers/busy/kill")
    refused = agent.client.post("/containers/busy/exec", json={"command": "true"})
    assert refused.status_code == 409
    assert "running" in refused.json()["detail"]
    assert agent.client.get("/containers/busy/stats").status_code == 409


def test_health_counts_and_published_ports(agent: Agent, test_image: str) -> None:
    status = agent.install(
        "web",
        test_image,
        startup_command="trap 'exit 0' TERM; httpd -f -p 8080 & wait",
        ports=[{"container": 8080}],
    )
    assert status["state"] == "running"
    view = agent.client.get("/containers/web").json()
    published = view["ports"]
    assert published[0]["container"] == 8080
    host_port = published[0]["host"]
    assert isinstance(host_port, int) and host_port > 0
    health: dict[str, Any] = httpx.get(agent.url + "/health").json()
    assert health["status"] == "ok"
    assert health["node"]["id"] == agent.node
    assert health["containers"]["running"] == 1
    assert health["containers"]["total"] == 1
    assert health["docker"]["reachable"] is True
    assert health["version"]


def test_openapi_documents_the_api(agent: Agent) -> None:
    spec = agent.client.get("/openapi.json").json()  # with the token: it is part of the API
    for path in [
        "/health",
        "/containers",
        "/containers/{server_id}",
        "/containers/{server_id}/status",
        "/containers/{server_id}/start",
        "/containers/{server_id}/stop",
        "/containers/{server_id}/restart",
        "/containers/{server_id}/kill",
        "/containers/{server_id}/reinstall",
        "/containers/{server_id}/logs",
        "/containers/{server_id}/stats",
        "/containers/{server_id}/exec",
        "/events",
    ]:
        assert path in spec["paths"], path
