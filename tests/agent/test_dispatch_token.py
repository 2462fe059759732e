"""``lightd_agent.security.verify_dispatch_token`` against the coordinator's real tokens."""

from __future__ import annotations

import base64
import json
import time

import pytest
from jose import jwt

from lightd_agent.security import DispatchTokenError, new_dispatch_key, verify_dispatch_token
from lightd_coordinator.security import NodeKeySigner

KEY = new_dispatch_key()
OTHER_KEY = new_dispatch_key()


def _header(**claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": "lightd-coordinator",
        "sub": "coordinator",
        "aud": "node-1",
        "iat": now,
        "exp": now + 60,
        "jti": "cmd_1_node-1",
        **claims,
    }
    return "Bearer " + jwt.encode(body, KEY, algorithm="HS256")


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_the_coordinators_token_verifies() -> None:
    header = NodeKeySigner(expires_in=60).authorization("node-1", "cmd_1_node-1", KEY)
    claims = verify_dispatch_token(header, KEY, node_id="node-1", command_id="cmd_1_node-1")
    assert claims.aud == "node-1" and claims.jti == "cmd_1_node-1"


def test_keys_are_fresh_and_long() -> None:
    assert new_dispatch_key() != new_dispatch_key()
    assert len(KEY) >= 32


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Basic abc", "missing"),
        ("Bearer a.b", "malformed"),
        ("Bearer !!.??.**", "malformed"),
        (_header(exp=int(time.time()) - 60), "expired"),
        (_header(aud="node-2"), "another node"),
        (_header(jti="cmd_2_node-1"), "another command"),
        (_header(sub="someone"), "not issued"),
        (_header(exp="soon"), "incomplete"),
        (
            "Bearer " + jwt.encode({"aud": "node-1"}, "other-secret-123456", algorithm="HS256"),
            "signature",
        ),
        (
            # signed with another node's key: a token for node-2 opens no node-1
            NodeKeySigner(expires_in=60).authorization("node-1", "cmd_1_node-1", OTHER_KEY),
            "signature",
        ),
        ("Bearer " + jwt.encode({"aud": "node-1"}, KEY, algorithm="HS512"), "HS256"),
        (f"Bearer {_b64({'alg': 'none'})}.{_b64({'aud': 'node-1'})}.", "HS256"),
    ],
)
def test_bad_tokens_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(DispatchTokenError, match=reason):
        verify_dispatch_token(header, KEY, node_id="node-1", command_id="cmd_1_node-1")
