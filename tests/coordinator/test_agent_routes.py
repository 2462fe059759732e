"""What agents call on the coordinator: the seed-000 remote contract under /api/v1/remote, the
agent token's reach, and the dispatch key that goes in but never comes out."""

from __future__ import annotations

import logging

import httpx
import pytest

from lightd_coordinator.config import Settings
from tests.coordinator.harness import STATIC, agent, coordinator, make_settings, node_body, sse

AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
KEY = "node-dispatch-key-0123456789abcdef0123456789"
OPERATOR = {"Authorization": f"Bearer {STATIC}"}
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}


def _auth_settings() -> Settings:
    return make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN})


def test_remote_update_becomes_one_server_update_event_per_key() -> None:
    with coordinator(_auth_settings()) as (base, _), sse(base, headers=OPERATOR) as events:
        events.until("initial_state")
        remote = f"{base}/api/v1/remote/node-7"
        assert httpx.get(f"{remote}/health", headers=AGENT).json() == {
            "status": 200,
            "endpoint": "active",
        }
        body = {"event": "update", "server": "my-server-001", "status": "installing"}
        key = {"Idempotency-Key": "node-7:my-server-001:1", **AGENT}
        # not registered yet: refused with 403, which the agent's outbox keeps and retries
        early = httpx.post(f"{remote}/update", json=body, headers=key)
        assert early.status_code == 403 and "not registered" in early.json()["detail"]
        node = {"id": "node-7", "address": "127.0.0.1", "port": 9}
        assert httpx.post(f"{base}/api/v1/nodes", json=node, headers=AGENT).status_code == 201
        events.until("node_registered")
        for _ in range(2):  # a retry after a lost answer: acked again, published once
            answer = httpx.post(f"{remote}/update", json=body, headers=key)
            assert answer.status_code == 200 and answer.json() == {"success": True}
        error = {
            "event": "update",
            "server": "my-server-001",
            "error": "failed",
            "data": "Docker container creation failed: image not found",
        }
        error_key = {"Idempotency-Key": "node-7:my-server-001:2", **AGENT}
        assert httpx.post(f"{remote}/update", json=error, headers=error_key).status_code == 200
        first = events.until("server_update").json()
        assert first["data"] == {"node": "node-7", "server": "my-server-001", "update": body}
        second = events.until("server_update").json()
        assert second["data"]["update"] == error


def test_remote_routes_validate_and_need_a_token() -> None:
    with coordinator(_auth_settings()) as (base, _):
        remote = f"{base}/api/v1/remote/node-7"
        body = {"event": "update", "server": "s1", "status": "ready"}
        assert httpx.post(f"{remote}/update", json=body).status_code == 401
        wrong = {"Authorization": "Bearer lightd_00000000000000000000000000000000"}
        assert httpx.post(f"{remote}/update", json=body, headers=wrong).status_code == 401
        odd_node = httpx.get(f"{base}/api/v1/remote/-bad/health", headers=AGENT)
        assert odd_node.status_code == 422
        # an id that is no registered node: refused before anything is kept
        document = {"containers": [{"id": "s1", "image": "busybox"}], "settings": {"a": 1}}
        for method, path, body_json in [
            ("POST", "update", body),
            ("GET", "config", None),
            ("POST", "config", document),
        ]:
            agent_call = httpx.request(method, f"{remote}/{path}", json=body_json, headers=AGENT)
            assert agent_call.status_code == 403, agent_call.text
            assert "not registered" in agent_call.json()["detail"]
            operator_call = httpx.request(
                method, f"{remote}/{path}", json=body_json, headers=OPERATOR
            )
            assert operator_call.status_code == 404, operator_call.text
        node = {"id": "node-7", "address": "127.0.0.1", "port": 9}
        assert httpx.post(f"{base}/api/v1/nodes", json=node, headers=AGENT).status_code == 201
        bad = httpx.post(f"{remote}/update", json={"event": "update"}, headers=AGENT)
        assert bad.status_code == 422
        # config: empty until pushed, then what was pushed
        assert httpx.get(f"{remote}/config", headers=AGENT).json() == {
            "containers": [],
            "settings": {},
        }
        assert httpx.post(f"{remote}/config", json=document, headers=AGENT).json() == {
            "success": True
        }
        assert httpx.get(f"{remote}/config", headers=AGENT).json() == document


def test_dispatch_key_goes_in_and_never_comes_out() -> None:
    with coordinator(_auth_settings()) as (base, _), sse(base, headers=OPERATOR) as events:
        events.until("initial_state")
        body = node_body("keyed", 9, dispatch_key=KEY)
        created = httpx.post(f"{base}/api/v1/nodes", json=body, headers=AGENT)
        assert created.status_code == 201
        registered = events.until("node_registered")
        answers = [
            created.text,
            registered.data,
            httpx.get(f"{base}/api/v1/nodes/keyed", headers=OPERATOR).text,
            httpx.get(f"{base}/api/v1/nodes", headers=OPERATOR).text,
        ]
        for text in answers:
            assert KEY not in text and "dispatch_key" not in text
        short = httpx.post(
            f"{base}/api/v1/nodes", json=node_body("short", 9, dispatch_key="abc"), headers=AGENT
        )
        assert short.status_code == 422


def test_a_node_without_a_key_gets_its_commands_unsigned(caplog: pytest.LogCaptureFixture) -> None:
    # registered with the seed's own body (no dispatch_key): the node chose not to verify, so
    # its commands arrive without an Authorization header, and the coordinator says so once
    caplog.set_level(logging.INFO, logger="lightd_coordinator.dispatch")
    with agent() as (fake, port), coordinator() as (base, _):
        assert (
            httpx.post(f"{base}/api/v1/nodes", json=node_body("keyless", port)).status_code == 201
        )
        for _ in range(2):
            result = httpx.post(
                f"{base}/api/v1/nodes/keyless/commands", json={"type": "exec", "action": "id"}
            ).json()
            assert result["status"] == "success" and result["output"] == "hello world"
        assert fake.count == 2
        for headers in fake.headers:
            assert "authorization" not in headers
            assert headers["idempotency-key"].startswith("cmd_")
        notes = [r for r in caplog.records if "without an Authorization header" in r.getMessage()]
        assert len(notes) == 1 and notes[0].levelno == logging.INFO

        # once the node sends a key (an agent enrolling it), its commands are signed
        keyed = node_body("keyless", port, dispatch_key=KEY)
        assert httpx.post(f"{base}/api/v1/nodes", json=keyed).status_code == 200
        result = httpx.post(
            f"{base}/api/v1/nodes/keyless/commands", json={"type": "exec", "action": "id"}
        ).json()
        assert result["status"] == "success"
        assert fake.headers[-1]["authorization"].startswith("Bearer ")

        sugar = httpx.get(f"{base}/api/v1/nodes/nowhere/containers")
        assert sugar.status_code == 404 and "nowhere" in sugar.json()["detail"]
        bad_spec = httpx.post(f"{base}/api/v1/nodes/keyless/containers", json={"id": "x"})
        assert bad_spec.status_code == 422
