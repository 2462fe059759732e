"""``lightd_agent.security.verify_dispatch_token`` against the coordinator's real tokens."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

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


# The headers are built when each test runs, not when the module is collected: a token made at
# collection with a 60 s life would expire before a long session reached this file.
@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        pytest.param(
            lambda: None,
            "missing",
            id="missing",
        ),
        pytest.param(
            lambda: "Basic abc",
            "missing",
            id="missing",
        ),
        pytest.param(
            lambda: "Bearer a.b",
            "malformed",
            id="malformed",
        ),
        pytest.param(
            lambda: "Bearer !!.??.**",
            "malformed",
            id="malformed",
        ),
        pytest.param(
            lambda: _header(exp=int(time.time()) - 60),
            "expired",
            id="expired",
        ),
        pytest.param(
            lambda: _header(aud="node-2"),
            "another node",
            id="another node",
        ),
        pytest.param(
            lambda: _header(jti="cmd_2_node-1"),
            "another command",
            id="another command",
        ),
        pytest.param(
            lambda: _header(sub="someone"),
            "not issued",
            id="not issued",
        ),
        pytest.param(
            lambda: _header(exp="soon"),
            "incomplete",
            id="incomplete",
        ),
        pytest.param(
            lambda: (
                "Bearer " + jwt.encode({"aud": "node-1"}, "other-secret-123456", algorithm="HS256")
            ),
            "signature",
            id="signature",
        ),
        pytest.param(
            # signed with another node's key: a token for node-2 opens no node-1
            lambda: NodeKeySigner(expires_in=60).authorization("node-1", "cmd_1_node-1", OTHER_KEY),
            "signature",
            id="signature",
        ),
        pytest.param(
            lambda: "Bearer " + jwt.encode({"aud": "node-1"}, KEY, algorithm="HS512"),
            "HS256",
            id="HS256",
        ),
        pytest.param(
            lambda: f"Bearer {_b64({'alg': 'none'})}.{_b64({'aud': 'node-1'})}.",
            "HS256",
            id="HS256",
        ),
    ],
)
def test_bad_tokens_are_refused(make_header: Callable[[], str | None], reason: str) -> None:
    header = make_header()
    with pytest.raises(DispatchTokenError, match=reason):
        verify_dispatch_token(header, KEY, node_id="node-1", command_id="cmd_1_node-1")
