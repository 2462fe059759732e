"""A server's log follow through the coordinator: relayed, throttled, bounded, its own token.

Real coordinator, real ``lightd run`` agent, real Docker engine. The browser never calls an
agent: ``GET /api/v1/nodes/{id}/containers/{server}/logs?follow=true`` on the coordinator
relays the agent's follow as SSE, dropping (and counting) what exceeds its line rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from lightd_agent.config import load_config
from lightd_agent.security import load_dispatch_key
from lightd_coordinator.logstream import LogFollower
from lightd_coordinator.main import create_app
from lightd_coordinator.security import mint_token
from lightd_shared.dispatch import DISPATCH_SUBJECT
from lightd_shared.stats import LOG_FOLLOW_SUBJECT
from tests.harness.servers import serve
from tests.integration.fleet import (
    API_TOKEN,
    AgentProcess,
    coordinator_settings,
    operator,
    start_agent,
    wait_until,
)

pytestmark = pytest.mark.docker


def _events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    event, data = "", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and event:
            yield event, "\n".join(data)
            event, data = "", []


def _state(client: httpx.Client, node: str, server: str) -> str:
    result = client.get(f"/api/v1/nodes/{node}/containers/{server}").json()
    return str(result["data"]["state"]) if result["status"] == "success" else ""


def test_log_follow_is_relayed_throttled_and_bounded(
    tmp_path: Path, docker_client: docker.DockerClient, test_image: str
) -> None:
    app = create_app(coordinator_settings())
    coordinator: Any = app.state.coordinator
    agent: AgentProcess | None = None
    with serve(app) as base, operator(base) as client:
        try:
            agent = start_agent(tmp_path, base, "logs", allow_exec=False)
            node = agent.node_id
            wait_until(lambda: client.get(f"/api/v1/nodes/{node}").status_code == 200)
            spec = {
                "id": "chatty",
                "image": test_image,
                # a burst of 3,000 lines, then one line every 200 ms
                "startup_command": "yes burst | head -n 3000; "
                "while true; do echo tick; sleep 0.2; done",
            }
            created = client.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert created.json()["status"] == "success", created.text
            wait_until(lambda: _state(client, node, "chatty") == "running", 60, what="running")

            coordinator.follower.lines_per_second = 50.0
            url = f"/api/v1/nodes/{node}/containers/chatty/logs"
            logs: list[str] = []
            skipped = 0
            began = time.monotonic()
            # a follow starts with the last 150 lines unless asked for more: the whole burst
            backlog = {"follow": "true", "tail": "5000"}
            with client.stream("GET", url, params=backlog) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                for event, data in _events(response):
                    if event == "log":
                        logs.append(data)
                    elif event == "skipped":
                        skipped += json.loads(data)["lines"]
                    if (skipped and "tick" in logs) or time.monotonic() - began > 60:
                        break
            elapsed = time.monotonic() - began
            # the burst passed the rate only partly (a bucket of 50 lines, refilled at 50 a
            # second while we read): the rest was dropped and counted, not queued
            passed = logs.count("burst")
            assert logs[0] == "burst"
            assert skipped > 0 and "tick" in logs
            assert passed <= 50 + 50 * elapsed + 1, (passed, elapsed)
            assert passed + skipped >= 3000
            assert skipped >= 3000 - passed

            # the follows open at once are bounded: beyond the limit, 429
            coordinator.follower = LogFollower(coordinator.client, max_streams=1)
            with client.stream("GET", url, params={"follow": "true"}) as first:
                assert first.status_code == 200
                second = client.get(url, params={"follow": "true"})
                assert second.status_code == 429, second.text
                assert "log follows are open" in second.json()["detail"]
            # the slot is free again once the coordinator saw the client go
            wait_until(lambda: coordinator.follower.active == 0, 10, what="the follow slot freed")
            unknown = client.get(f"/api/v1/nodes/{node}/containers/nope/logs?follow=true")
            assert unknown.status_code == 404, unknown.text
            too_long = client.get(url, params={"follow": "true", "tail": 20_000})
            assert too_long.status_code == 422
            assert too_long.json()["detail"][0]["loc"] == ["query", "tail"]
            anonymous = httpx.get(f"{base}{url}?follow=true")
            assert anonymous.status_code == 401

            # the agent's side: only a log-follow token for this server opens it, and such a
            # token runs no command
            config = load_config(agent.config)
            key = load_dispatch_key(config.storage.state_dir)
            direct = f"http://127.0.0.1:{agent.port}/coordinator/logs/chatty"

            def token(subject: str, jti: str) -> dict[str, str]:
                signed = mint_token(
                    key, subject=subject, audience=node, expires_in=30, token_id=jti
                )
                return {"Authorization": f"Bearer {signed}"}

            api_token = {"Authorization": f"Bearer {API_TOKEN}"}
            assert httpx.get(direct, headers=api_token).status_code == 401
            command_token = token(DISPATCH_SUBJECT, "logs:chatty:1")
            assert httpx.get(direct, headers=command_token).status_code == 401
            other_server = token(LOG_FOLLOW_SUBJECT, "logs:other:1")
            assert httpx.get(direct, headers=other_server).status_code == 401
            follow_token = token(LOG_FOLLOW_SUBJECT, "cmd-1")
            command = {"id": "cmd-1", "node_id": node, "type": "container", "action": "list"}
            refused = httpx.post(
                f"http://127.0.0.1:{agent.port}/commands", json=command, headers=follow_token
            )
            assert refused.status_code == 401, refused.text
        finally:
            if agent is not None:
                client.delete(f"/api/v1/nodes/{agent.node_id}/containers/chatty")
                agent.stop()
                for container in docker_client.containers.list(
                    all=True, filters={"label": f"lightd.node={agent.node_id}"}
                ):
                    container.remove(force=True, v=True)
