"""Unit tests of token checks (security.py) and log redaction (logs.py)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from jose import jwt

from lightd_coordinator.logs import JsonFormatter, RedactingFilter
from lightd_coordinator.security import (
    COORDINATOR_AUDIENCE,
    InvalidToken,
    NodeKeySigner,
    TokenVerifier,
    mint_token,
    verify_jwt,
)

SECRET = "unit-test-secret-0123456789"


def test_minted_tokens_verify_and_carry_their_claims() -> None:
    token = mint_token(SECRET, subject="me", audience=COORDINATOR_AUDIENCE, expires_in=60)
    claims = verify_jwt(token, SECRET, audience=COORDINATOR_AUDIENCE)
    assert claims["sub"] == "me" and claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not a jwt", "malformed"),
        (
            jwt.encode({"sub": "x", "aud": COORDINATOR_AUDIENCE, "exp": 1}, SECRET),
            "expired",
        ),
        (
            jwt.encode(
                {"sub": "x", "aud": COORDINATOR_AUDIENCE, "exp": int(time.time()) + 3600},
                SECRET,
                algorithm="HS384",
            ),
            "algorithm",
        ),
        (
            jwt.encode({"sub": "x", "aud": "node-1", "exp": int(time.time()) + 3600}, SECRET),
            "invalid",
        ),
    ],
)
def test_bad_jwts_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verify_jwt(token, SECRET, audience=COORDINATOR_AUDIENCE)


def test_static_token_compare() -> None:
    verifier = TokenVerifier(static_token="static-1234567890", jwt_secret=SECRET)
    assert verifier.verify("static-1234567890").kind == "static"
    with pytest.raises(InvalidToken, match="missing"):
        verifier.verify(None)
    with pytest.raises(InvalidToken):
        verifier.verify("static-1234567891")


def test_dispatch_token_is_scoped_to_node_and_command() -> None:
    header = NodeKeySigner(expires_in=30).authorization("node-1", "cmd_1_node-1", SECRET)
    token = header.removeprefix("Bearer ")
    claims = verify_jwt(token, SECRET, audience="node-1")
    assert claims["jti"] == "cmd_1_node-1" and claims["sub"] == "coordinator"
    with pytest.raises(InvalidToken):
        verify_jwt(token, SECRET, audience="node-2")
    with pytest.raises(InvalidToken):
        verify_jwt(token, SECRET, audience=COORDINATOR_AUDIENCE)


def test_json_formatter_writes_one_object_per_line_and_redacts() -> None:
    record = logging.makeLogRecord(
        {
            "name": "x",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": 'GET /ws?token=%s HTTP/1.1 "Bearer %s" secret=%s',
            "args": ("abc.def.ghi", "eyJhbGciOi.x.y", "s3cr3t-value-123"),
            "node_id": "n1",
        }
    )
    RedactingFilter(["s3cr3t-value-123"]).filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["node_id"] == "n1"
    assert entry["message"] == 'GET /ws?token=*** HTTP/1.1 "Bearer ***" secret=***'
