"""The activity log end to end: a real agent on the real Docker engine, dispatched through the
coordinator, and what the log keeps of it (who, node, server, outcome; never a secret)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    AGENT_TOKEN,
    STATIC,
    AgentProcess,
    coordinator_settings,
    operator,
    running_coordinator,
    start_agent,
    wait_until,
)

pytestmark = pytest.mark.docker

ENV_SECRET = "fleet-env-secret-4f3e2d1c"


def _entries(client: Any, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/activity", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def test_the_activity_log_records_a_dispatch_with_its_user(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    test_image: str,
    docker_cleanup: Cleanup,
) -> None:
    settings = coordinator_settings()
    settings.registry.provider = "sqlite"
    settings.registry.path = str(tmp_path / "coordinator.db")
    agent: AgentProcess | None = None
    with running_coordinator(settings) as base, operator(base) as client:
        try:
            agent = start_agent(tmp_path, base, "act", allow_exec=True)
            node = agent.node_id
            wait_until(
                lambda: client.get(f"/api/v1/nodes/{node}").status_code == 200,
                what="the agent registered",
            )
            # the agent's own registration, made with the agent token
            joined = _entries(client, node=node, action="node.register")
            assert joined and joined[-1]["subject"] == "agent"
            assert joined[-1]["outcome"] in ("200", "201")

            command = {
                "type": "exec",
                "action": "echo 'hello world'",
                "params": {"timeout": "10s"},
                "user": "developer",
            }
            done = client.post(f"/api/v1/nodes/{node}/commands", json=command)
            assert done.status_code == 200 and done.json()["status"] == "success", done.text
            assert done.json()["output"] == "hello world"
            # a command's own entry is written with its final result, just after the answer left
            [entry] = wait_until(
                lambda: _entries(client, node=node, kind="command", action="exec"),
                what="the command's entry",
            )
            assert entry["user"] == "developer" and entry["subject"] == "static-token"
            assert entry["outcome"] == "success" and entry["command_id"] == done.json()["id"]
            assert entry["request_id"] == done.headers["x-request-id"]
            assert entry["shell"]["program"] == "echo"

            # a server created with an env secret, then stopped: recorded with its server
            server = f"act-{docker_cleanup.value}"
            spec = {
                "id": server,
                "image": test_image,
                "startup_command": "sleep 600",
                "env": {"API_SECRET": ENV_SECRET},
                "labels": docker_cleanup.labels,
            }
            created = client.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert created.status_code == 200 and created.json()["status"] == "success"
            stopped = client.post(f"/api/v1/nodes/{node}/containers/{server}/stop")
            assert stopped.status_code == 200, stopped.text

            def kinds_once_stopped() -> set[tuple[str, str, str]]:
                kinds = {
                    (e["kind"], e["action"], e["outcome"])
                    for e in _entries(client, node=node, server=server)
                }
                stopped = any(k[:2] == ("command", "container.stop") for k in kinds)
                return kinds if stopped else set()

            kinds = wait_until(kinds_once_stopped, what="the stop command's entry")
            assert ("command", "container.create", "success") in kinds
            assert ("request", "container.create", "200") in kinds
            assert ("request", "container.stop", "200") in kinds
            assert any(k[:2] == ("command", "container.stop") for k in kinds)

            # nothing secret in the log's table: not the env value, not a token
            with closing(sqlite3.connect(settings.registry.path)) as conn:
                rows = "\n".join(repr(r) for r in conn.execute("SELECT * FROM activity"))
            assert server in rows and "developer" in rows
            for secret in (ENV_SECRET, STATIC, AGENT_TOKEN, "hello world"):
                assert secret not in rows
        finally:
            if agent is not None:
                agent.stop()
