"""Trust both ways, over real HTTP: the agent refuses every command token but the coordinator's
for this node and command; the coordinator refuses agents without its agent token; an agent
re-registers after a coordinator restart (memory registry) and never crashes its loop while the
coordinator is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from lightd_agent.app import create_app as create_agent
from lightd_agent.config import AgentConfig
from lightd_coordinator.main import create_app as create_coordinator
from lightd_coordinator.security import NodeKeySigner
from tests.harness.servers import free_port, serve
from tests.integration.fleet import (
    AGENT_TOKEN,
    STATIC,
    agent_document,
    coordinator_settings,
    operator,
    running_coordinator,
    wait_until,
)

pytestmark = pytest.mark.docker


@contextmanager
def agent_in_process(
    tmp: Path, coordinator: str, node_id: str, **options: Any
) -> Iterator[tuple[str, FastAPI]]:
    document = agent_document(tmp, coordinator, node_id, allow_exec=True, **options)
    document["remote"]["enabled"] = False
    app = create_agent(AgentConfig.model_validate(document, strict=False))
    with serve(app, port=document["server"]["port"]) as url:
        yield url, app


def _command(node_id: str, command_id: str) -> dict[str, Any]:
    return {
        "id": command_id,
        "node_id": node_id,
        "type": "container",
        "action": "list",
        "params": {"timeout": "10s"},
    }


def _claims(node_id: str, command_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "lightd-coordinator",
        "sub": "coordinator",
        "aud": node_id,
        "iat": now,
        "exp": now + 60,
        "jti": command_id,
        **changes,
    }


def test_agent_takes_only_the_coordinators_token_for_it(tmp_path: Path) -> None:
    node = "trust-node"
    with (
        running_coordinator() as base,
        agent_in_process(tmp_path, base, node) as (url, app),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        key: str = app.state.agent.dispatch_key
        command_id = "cmd_1_trust-node"
        body = _command(node, command_id)

        def post(token: str | None, payload: dict[str, Any] = body) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return client.post("/commands", json=payload, headers=headers)

        good = NodeKeySigner(expires_in=30).authorization(node, command_id, key)
        refusals = {
            "no token": post(None),
            "the agent's own API token": post(app.state.agent.config.authorization.token),
            "forged (another key)": post(
                jwt.encode(_claims(node, command_id), "x" * 43, algorithm="HS256")
            ),
            "expired": post(
                jwt.encode(
                    _claims(
                        node, command_id, iat=int(time.time()) - 120, exp=int(time.time()) - 60
                    ),
                    key,
                    algorithm="HS256",
                )
            ),
            "for another node": post(
                jwt.encode(_claims("other-node", command_id), key, algorithm="HS256")
            ),
            "for another command": post(
                jwt.encode(_claims(node, "cmd_2_trust-node"), key, algorithm="HS256")
            ),
            "the coordinator's API JWT": post(
                jwt.encode(
                    {**_claims(node, command_id), "aud": "lightd-coordinator"},
                    "fleet-jwt-secret-0123456789abcdef",
                    algorithm="HS256",
                )
            ),
        }
        for what, response in refusals.items():
            assert response.status_code == 401, (what, response.text)
            assert "command refused" in response.json()["detail"], what
        # the real thing runs, once: a replay gets the first result
        first = post(good.removeprefix("Bearer "))
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "success" and first.json()["id"] == command_id
        again = post(good.removeprefix("Bearer "))
        assert again.json() == first.json()


def test_coordinator_refuses_agents_without_its_agent_token(tmp_path: Path) -> None:
    with running_coordinator() as base, operator(base) as client:
        with agent_in_process(tmp_path, base, "no-token", token=None) as (url, _):
            health = wait_until(
                lambda: httpx.get(f"{url}/health").json()["coordinator"].get("last_error") or "",
                what="the agent reporting its refusal",
            )
            assert "401" in health and "coordinator.token" in health
            assert client.get("/api/v1/nodes/no-token").status_code == 404
        # the agent token opens the agents' routes, and nothing an operator does
        agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        body = {"id": "by-hand", "address": "127.0.0.1", "port": free_port()}
        assert httpx.post(f"{base}/api/v1/nodes", json=body).status_code == 401
        assert httpx.post(f"{base}/api/v1/nodes", json=body, headers=agent).status_code == 201
        assert httpx.get(f"{base}/api/v1/nodes", headers=agent).status_code == 403
        assert httpx.get(f"{base}/api/v1/services", headers=agent).status_code == 403
        assert (
            httpx.post(
                f"{base}/api/v1/nodes/by-hand/commands",
                json={"type": "exec", "action": "id"},
                headers=agent,
            ).status_code
            == 403
        )
        assert httpx.get(f"{base}/api/v1/remote/by-hand/health").status_code == 401
        assert httpx.get(f"{base}/api/v1/remote/by-hand/health", headers=agent).json() == {
            "status": 200,
            "endpoint": "active",
        }


def test_agent_reregisters_after_a_coordinator_restart(tmp_path: Path) -> None:
    port = free_port()
    coordinator_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {STATIC}"}

    def status() -> str | None:
        try:
            response = httpx.get(f"{coordinator_url}/api/v1/nodes/comeback", headers=headers)
        except httpx.HTTPError:
            return None
        return response.json()["status"] if response.status_code == 200 else None

    with agent_in_process(tmp_path, coordinator_url, "comeback") as (url, _):
        # the coordinator is down at first: the agent keeps trying and keeps serving
        wait_until(
            lambda: httpx.get(f"{url}/health").json()["coordinator"]["last_error"],
            what="a failed attempt to reach the coordinator",
        )
        assert httpx.get(f"{url}/health").json()["coordinator"]["registered"] is False
        for _ in range(2):  # up, down (memory registry forgets), up again
            with serve(create_coordinator(coordinator_settings()), port=port):
                wait_until(lambda: status() == "active", what="registered with the coordinator")
                assert httpx.get(f"{url}/health").json()["coordinator"]["last_error"] is None


def test_an_agent_keeps_its_node_id_and_no_other_host_can_take_it(tmp_path: Path) -> None:
    node = "bound-node"
    with running_coordinator() as base, operator(base) as client:

        def node_status() -> str | None:
            answer = client.get(f"/api/v1/nodes/{node}")
            return answer.json()["status"] if answer.status_code == 200 else None

        with agent_in_process(tmp_path / "host-a", base, node) as (_, app):
            wait_until(lambda: node_status() == "active", what="first enrolment")
            key = app.state.agent.dispatch_key
        assert node_status() == "inactive"  # the clean shutdown's last heartbeat, with its proof
        with agent_in_process(tmp_path / "host-a", base, node) as (_, app):
            assert app.state.agent.dispatch_key == key  # kept in the state directory
            wait_until(lambda: node_status() == "active", what="re-registration after a restart")

        # another host (its own state directory, so its own key) claims the same node id
        with agent_in_process(tmp_path / "host-b", base, node) as (url, app):
            assert app.state.agent.dispatch_key != key
            error = wait_until(
                lambda: httpx.get(f"{url}/health").json()["coordinator"].get("last_error") or "",
                what="the agent reporting the refusal",
            )
            assert "409" in error and f"nodes delete {node}" in error
            assert key not in error and app.state.agent.dispatch_key not in error
            assert node_status() == "inactive"  # host B's heartbeats changed nothing
            # the operator decides host B is the node now: delete, and it enrols at once
            assert client.delete(f"/api/v1/nodes/{node}").status_code == 200
            wait_until(lambda: node_status() == "active", what="host B enrolling")
