"""The agent token enrols; only the holder of a node's dispatch key speaks for it afterwards.

Real coordinator on loopback, real JWTs signed with the agent's own helper
(:func:`lightd_agent.security.node_proof`), so both sides of the contract are exercised.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from jose import jwt

from lightd_agent.security import load_dispatch_key, new_dispatch_key, node_proof
from lightd_coordinator.config import Settings
from lightd_coordinator.security import NODE_PROOF_LEEWAY
from lightd_shared.dispatch import NODE_PROOF_AUDIENCE, NODE_PROOF_HEADER, NODE_PROOF_ISSUER
from tests.coordinator.harness import STATIC, coordinator, make_settings, node_body

AGENT_TOKEN = "lightd_5f0e1d2c3b4a59687766554433221100"
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {STATIC}"}
KEY = new_dispatch_key()
OTHER = new_dispatch_key()


def _settings(tmp_path: Path | None = None) -> Settings:
    registry: dict[str, object] = {"node_timeout": "1h"}
    if tmp_path is not None:
        registry |= {"provider": "sqlite", "path": str(tmp_path / "fleet.db")}
    return make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN}, registry=registry)


def _as_node(key: str, node_id: str, **claims: object) -> dict[str, str]:
    if claims:
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": NODE_PROOF_ISSUER,
                "sub": node_id,
                "aud": NODE_PROOF_AUDIENCE,
                "iat": now,
                "exp": now + 60,
                **claims,
            },
            key,
            algorithm="HS256",
        )
    else:
        token = node_proof(key, node_id, expires_in=60)
    return {**AGENT, NODE_PROOF_HEADER: token}


def _enrol(client: httpx.Client, node_id: str, key: str, **extra: object) -> httpx.Response:
    body = node_body(node_id, 9, dispatch_key=key, **extra)
    return client.post("/api/v1/nodes", json=body, headers=_as_node(key, node_id))


def test_an_enrolled_id_cannot_be_taken_over_with_the_agent_token() -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY, address="10.0.0.1").status_code == 201
        hijack = node_body("n1", 9, dispatch_key=OTHER, address="10.6.6.6")
        attempts = {
            "no proof": client.post("/api/v1/nodes", json=hijack, headers=AGENT),
            "proof with another key": client.post(
                "/api/v1/nodes", json=hijack, headers=_as_node(OTHER, "n1")
            ),
        }
        for what, answer in attempts.items():
            assert answer.status_code == 409, what
            detail = answer.json()["detail"]
            assert "enrolled" in detail and "nodes delete n1" in detail, what
            assert KEY not in answer.text and OTHER not in answer.text
        record = client.get("/api/v1/nodes/n1", headers=OPERATOR).json()
        assert record["address"] == "10.0.0.1"  # nothing of the refused calls was applied

        # the holder re-registers (a restart) and may rotate its key with the old key's proof
        rotate = node_body("n1", 9, dispatch_key=OTHER, address="10.0.0.2")
        moved = client.post("/api/v1/nodes", json=rotate, headers=_as_node(KEY, "n1"))
        assert moved.status_code == 200
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=_as_node(KEY, "n1")).is_error
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=_as_node(OTHER, "n1")).is_success


def test_heartbeats_relays_and_reports_need_the_nodes_proof() -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
        assert _enrol(client, "n2", OTHER).status_code == 201
        now = int(time.time())
        wrong = {
            "none": AGENT,
            "n2's own proof": _as_node(OTHER, "n2"),
            "made for n1 with n2's key": _as_node(OTHER, "n1"),
            "expired (beyond the clock-skew leeway)": _as_node(
                KEY, "n1", iat=now - 240, exp=now - NODE_PROOF_LEEWAY - 60
            ),
            "wrong audience": _as_node(KEY, "n1", aud="lightd-coordinator"),
            "not a JWT": {**AGENT, NODE_PROOF_HEADER: "garbage"},
        }
        relay = {"type": "server_update", "data": {"server": "s1"}}
        for what, headers in wrong.items():
            beat = client.post("/api/v1/nodes/n1/heartbeat", json={}, headers=headers)
            assert beat.status_code == 403, what
            assert "n1" in beat.json()["detail"]
            sent = client.post("/api/v1/nodes/n1/events", json=relay, headers=headers)
            assert sent.status_code == 403, what
        good = _as_node(KEY, "n1")
        for _ in range(2):  # the second one is answered from the verified-proof cache
            assert client.post("/api/v1/nodes/n1/heartbeat", json={}, headers=good).is_success
        assert client.post("/api/v1/nodes/n1/events", json=relay, headers=good).status_code == 202
        # an operator speaks for any node, proof or not
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=OPERATOR).is_success

        # a result report is checked against the node named in it
        command = {"type": "exec", "action": "echo hi", "params": {"timeout": "5s"}}
        sent_cmd = client.post(
            "/api/v1/nodes/n1/commands?async=true", json=command, headers=OPERATOR
        ).json()
        report = {
            "id": sent_cmd["id"],
            "node_id": "n1",
            "command": command,
            "status": "success",
            "output": "forged",
            "duration": "1ms",
        }
        forged = client.post(
            f"/api/v1/commands/{sent_cmd['id']}/result", json=report, headers=_as_node(OTHER, "n2")
        )
        assert forged.status_code == 403
        stored = client.get(f"/api/v1/commands/{sent_cmd['id']}", headers=OPERATOR).json()
        assert stored["output"] != "forged"


def test_a_deleted_node_enrols_again_and_unbound_ids_enrol_on_first_use() -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
        assert _enrol(client, "n1", OTHER).status_code == 409  # a rebuilt host, new key
        assert client.delete("/api/v1/nodes/n1", headers=OPERATOR).is_success
        assert _enrol(client, "n1", OTHER).status_code == 201
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=_as_node(OTHER, "n1")).is_success

        # an agent registered n4 without a key (a seed-style agent): it may register it again
        keyless = node_body("n4", 9)
        assert client.post("/api/v1/nodes", json=keyless, headers=AGENT).status_code == 201
        assert client.post("/api/v1/nodes", json=keyless, headers=AGENT).status_code == 200
        assert _enrol(client, "n4", KEY).status_code == 200  # first use with a key binds it
        assert client.post("/api/v1/nodes/n4/heartbeat", headers=AGENT).status_code == 403


def test_an_operator_registered_node_is_not_taken_over_by_the_agent_token() -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        plain = node_body("n3", 9000, address="10.0.0.5")
        assert client.post("/api/v1/nodes", json=plain, headers=OPERATOR).status_code == 201
        for body in (
            node_body("n3", 9, address="10.6.6.6"),
            node_body("n3", 9, address="10.6.6.6", dispatch_key=KEY),
        ):
            taken = client.post("/api/v1/nodes", json=body, headers=_as_node(KEY, "n3"))
            assert taken.status_code == 409, taken.text
            assert "registered by an operator" in taken.json()["detail"]
        record = client.get("/api/v1/nodes/n3", headers=OPERATOR).json()
        assert (record["address"], record["port"]) == ("10.0.0.5", 9000)
        # the operator lets an agent have the id by deleting the node; then it enrols
        assert client.delete("/api/v1/nodes/n3", headers=OPERATOR).is_success
        assert _enrol(client, "n3", KEY).status_code == 201
        # the operator may still re-register it (operators speak for any node)
        assert client.post("/api/v1/nodes", json=plain, headers=OPERATOR).status_code == 200


def test_the_binding_survives_a_coordinator_restart(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
    with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", OTHER).status_code == 409
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=_as_node(KEY, "n1")).is_success


def test_the_agent_keeps_its_key_owner_only_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_dispatch_key(state)
    assert load_dispatch_key(state) == key
    path = state / "dispatch.key"
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("short\n")
    replaced = load_dispatch_key(state)
    assert replaced != key and len(replaced) >= 32
    assert load_dispatch_key(state) == replaced


@pytest.mark.parametrize("claims", [{"iss": "lightd-coordinator"}, {"sub": "n2"}])
def test_a_proof_must_name_the_agent_and_the_node(claims: dict[str, object]) -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
        beat = client.post("/api/v1/nodes/n1/heartbeat", headers=_as_node(KEY, "n1", **claims))
        assert beat.status_code == 403


def test_the_remote_routes_need_the_proof_of_an_enrolled_node() -> None:
    update = {"event": "update", "server": "s1", "status": "ready"}
    document = {"containers": [{"id": "s1", "image": "busybox"}], "settings": {}}
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
        assert _enrol(client, "n2", OTHER).status_code == 201
        remote = "/api/v1/remote/n1"
        now = int(time.time())
        wrong = {
            "none": AGENT,
            "n2's own proof": _as_node(OTHER, "n2"),
            "made for n1 with n2's key": _as_node(OTHER, "n1"),
            "expired": _as_node(KEY, "n1", iat=now - 240, exp=now - NODE_PROOF_LEEWAY - 60),
        }
        for what, headers in wrong.items():
            calls = {
                "health": client.get(f"{remote}/health", headers=headers),
                "update": client.post(f"{remote}/update", json=update, headers=headers),
                "get config": client.get(f"{remote}/config", headers=headers),
                "push config": client.post(f"{remote}/config", json=document, headers=headers),
            }
            for call, answer in calls.items():
                assert answer.status_code == 403, (what, call, answer.text)
                assert "n1" in answer.json()["detail"]
        # nothing of the refused calls was kept
        assert client.get(f"{remote}/config", headers=OPERATOR).json()["containers"] == []

        good = _as_node(KEY, "n1")
        assert client.get(f"{remote}/health", headers=good).status_code == 200
        assert client.post(f"{remote}/update", json=update, headers=good).json() == {
            "success": True
        }
        assert client.post(f"{remote}/config", json=document, headers=good).status_code == 200
        assert client.get(f"{remote}/config", headers=good).json() == document
        # operators need no proof; keyless nodes have nothing to prove yet; an id that is no
        # registered node is refused (403 for the agent token: its outbox retries)
        assert client.post(f"{remote}/update", json=update, headers=OPERATOR).status_code == 200
        plain = node_body("n3", 9)
        assert client.post("/api/v1/nodes", json=plain, headers=OPERATOR).status_code == 201
        sent = client.post("/api/v1/remote/n3/update", json=update, headers=AGENT)
        assert sent.status_code == 200, sent.text
        unknown = client.post("/api/v1/remote/not-registered/update", json=update, headers=AGENT)
        assert unknown.status_code == 403 and "not registered" in unknown.json()["detail"]
        # a bad node id is still a 422, before any proof is looked at
        assert client.get("/api/v1/remote/-bad/health", headers=AGENT).status_code == 422


def test_an_agent_clock_somewhat_behind_is_tolerated() -> None:
    with coordinator(_settings()) as (base, _), httpx.Client(base_url=base) as client:
        assert _enrol(client, "n1", KEY).status_code == 201
        now = int(time.time())
        behind = _as_node(KEY, "n1", iat=now - 330, exp=now - 30)  # its clock is 30 s slow
        assert client.post("/api/v1/nodes/n1/heartbeat", headers=behind).is_success
