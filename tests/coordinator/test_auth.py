"""Every auth case over real HTTP: missing, wrong, expired, forged, alg-none and foreign tokens."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from jose import jwt

from lightd_coordinator.security import COORDINATOR_AUDIENCE, mint_token
from lightd_shared.auth import TokenResponse
from tests.coordinator.harness import SECRET, STATIC, coordinator, make_settings, node_body, sse

AUTH_ON = make_settings(auth={"enabled": True})
AGENT_TOKEN = "lightd_0123456789abcdef0123456789abcdef"

PROTECTED = [
    ("GET", "/api/v1/nodes"),
    ("POST", "/api/v1/nodes"),
    ("GET", "/api/v1/nodes/n"),
    ("PUT", "/api/v1/nodes/n"),
    ("DELETE", "/api/v1/nodes/n"),
    ("GET", "/api/v1/nodes/n/status"),
    ("POST", "/api/v1/nodes/n/heartbeat"),
    ("POST", "/api/v1/nodes/n/commands"),
    ("POST", "/api/v1/nodes/n/events"),
    ("POST", "/api/v1/commands"),
    ("GET", "/api/v1/commands/cmd_1_n"),
    ("POST", "/api/v1/commands/cmd_1_n/result"),
    ("GET", "/api/v1/services"),
    ("GET", "/metrics"),
    ("GET", "/ws"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "x", "aud": COORDINATOR_AUDIENCE, "iat": now, "exp": now + 3600, **extra}


BAD_TOKENS = {
    "wrong static": "not-the-token",
    "expired": jwt.encode(_claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256"),
    "forged": jwt.encode(_claims(), "some-other-secret-1234567890", algorithm="HS256"),
    "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "alg HS512": jwt.encode(_claims(), SECRET, algorithm="HS512"),
    "node audience": mint_token(SECRET, subject="coordinator", audience="n", expires_in=3600),
    "no exp": jwt.encode({"sub": "x", "aud": COORDINATOR_AUDIENCE}, SECRET, algorithm="HS256"),
    "garbage jwt": "a.b.c",
}


def test_every_endpoint_but_health_needs_a_token() -> None:
    with coordinator(AUTH_ON) as (base, _), httpx.Client(base_url=base) as client:
        assert client.get("/health").status_code == 200
        for method, path in PROTECTED:
            response = client.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "unauthorized" in response.json()["detail"]


@pytest.fixture(scope="module")
def auth_base() -> Iterator[str]:
    with coordinator(AUTH_ON) as (base, _):
        yield base


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_are_401(auth_base: str, name: str) -> None:
    token = BAD_TOKENS[name]
    with httpx.Client(base_url=auth_base) as client:
        response = client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert token not in response.text
        stream = client.get(f"/ws?token={token}")
        assert stream.status_code == 401


def test_basic_scheme_is_refused() -> None:
    with coordinator(AUTH_ON) as (base, _):
        response = httpx.get(f"{base}/api/v1/nodes", headers={"Authorization": f"Basic {STATIC}"})
        assert response.status_code == 401


def test_static_token_and_minted_jwt_open_the_api() -> None:
    with coordinator(AUTH_ON) as (base, _), httpx.Client(base_url=base) as client:
        static = {"Authorization": f"Bearer {STATIC}"}
        assert client.get("/api/v1/nodes", headers=static).status_code == 200
        minted = client.post("/api/v1/auth/token", headers=static)
        assert minted.status_code == 200
        answer = TokenResponse.model_validate_json(minted.content)
        assert set(minted.json()) == {"access_token", "token_type", "expires_in"}
        assert answer.token_type == "bearer" and answer.expires_in == 24 * 3600
        bearer = {"Authorization": f"Bearer {answer.access_token}"}
        created = client.post("/api/v1/nodes", json=node_body("n", 80), headers=bearer)
        assert created.status_code == 201
        # a JWT cannot mint another one; no token cannot either
        assert client.post("/api/v1/auth/token", headers=bearer).status_code == 401
        assert client.post("/api/v1/auth/token").status_code == 401
        # the CLI's token works too
        cli = mint_token(SECRET, subject="cli", audience=COORDINATOR_AUDIENCE, expires_in=60)
        assert client.get("/metrics", headers={"Authorization": f"Bearer {cli}"}).status_code == 200


def test_event_stream_accepts_the_token_in_the_query() -> None:
    with coordinator(AUTH_ON) as (base, _):
        with sse(base, f"/ws?token={STATIC}") as stream:
            assert stream.next_message().json()["type"] == "initial_state"
        with sse(base, headers={"Authorization": f"Bearer {STATIC}"}) as stream:
            assert stream.next_message().json()["type"] == "initial_state"
        # ?token= is for the stream only
        assert httpx.get(f"{base}/api/v1/nodes?token={STATIC}").status_code == 401


def test_auth_off_needs_no_token_but_minting_still_needs_the_static_one() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        assert client.get("/api/v1/nodes").status_code == 200
        assert client.post("/api/v1/auth/token").status_code == 401
        ok = client.post("/api/v1/auth/token", headers={"Authorization": f"Bearer {STATIC}"})
        assert ok.status_code == 200


def test_the_api_docs_need_the_same_auth_when_auth_is_on() -> None:
    static = {"Authorization": f"Bearer {STATIC}"}
    settings = make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN})
    with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
        spec = client.get("/openapi.json", headers=static)
        assert spec.status_code == 200 and "/api/v1/nodes" in spec.json()["paths"]
        for page in ("/docs", "/redoc"):
            assert client.get(page).status_code == 401
            html = client.get(page, headers=static)
            assert html.status_code == 200 and "/openapi.json" in html.text
            # a browser opens the page with ?token=; the page then fetches the schema with it
            opened = client.get(f"{page}?token={STATIC}")
            assert opened.status_code == 200
            assert f"/openapi.json?token={STATIC}" in opened.text
            assert opened.headers["cache-control"] == "no-store"
            assert opened.headers["referrer-policy"] == "no-referrer"
            assert client.get(f"{page}?token=wrong").status_code == 401
            agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
            assert client.get(page, headers=agent).status_code == 403
        assert client.get(f"/openapi.json?token={STATIC}").status_code == 200
        assert client.get("/openapi.json?token=wrong").status_code == 401


def test_the_api_docs_are_open_when_auth_is_off() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200 and "/openapi.json" in html.text
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        assert "/openapi.json" not in spec.json()["paths"]  # the docs do not document themselves
