"""``lightd_shared.dispatch.verify_dispatch_token`` (what an agent runs) against real tokens."""

from __future__ import annotations

import base64
import json
import time

import pytest
from jose import jwt

from lightd_coordinator.security import SharedSecretSigner
from lightd_shared.dispatch import DispatchTokenError, verify_dispatch_token

SECRET = "dispatch-secret-0123456789"


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
    return "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_the_coordinators_token_verifies() -> None:
    header = SharedSecretSigner(SECRET, expires_in=60).authorization("node-1", "cmd_1_node-1")
    claims = verify_dispatch_token(header, SECRET, node_id="node-1", command_id="cmd_1_node-1")
    assert claims.aud == "node-1" and claims.jti == "cmd_1_node-1"


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
        ("Bearer " + jwt.encode({"aud": "node-1"}, SECRET, algorithm="HS512"), "HS256"),
        (f"Bearer {_b64({'alg': 'none'})}.{_b64({'aud': 'node-1'})}.", "HS256"),
    ],
)
def test_bad_tokens_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(DispatchTokenError, match=reason):
        verify_dispatch_token(header, SECRET, node_id="node-1", command_id="cmd_1_node-1")
