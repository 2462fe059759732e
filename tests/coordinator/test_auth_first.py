"""The token is checked before the body is read, on every route of the coordinator.

FastAPI parses a JSON body before it runs a route's dependencies, so ``POST /api/v1/commands``
without a token and with malformed JSON answered 422 (what is wrong with the body) instead of
401: an unauthenticated caller learned how its body was handled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from lightd_coordinator.main import create_app
from tests.coordinator.harness import coordinator, make_settings

AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
OPEN = {"/health", "/api/v1/auth/token"}
"""Routes that take no token (the token route reads the server token itself, from a header)."""


def _routes() -> list[tuple[str, str]]:
    app = create_app(make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN}))
    found = []
    for template, operations in app.openapi()["paths"].items():
        if template not in OPEN:
            path = re.sub(r"\{[^}]+\}", "n1", template)
            found.extend((method.upper(), path) for method in sorted(operations))
    return found


ROUTES = _routes()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    # every route twice from one client: more refused calls than the failed-auth limit lets
    # through (its 429s are tested in test_ratelimit.py); this module is about the 401s
    settings = make_settings(
        auth={"enabled": True, "agent_token": AGENT_TOKEN},
        server={"rate_limit": {"burst": 100_000}},
    )
    with coordinator(settings) as (url, _):
        yield url


def test_every_route_is_covered() -> None:
    assert ("POST", "/api/v1/commands") in ROUTES
    assert len(ROUTES) > 20


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_no_token_and_malformed_json_is_401(
    base: str, method: str, path: str, token: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.request(
        method, f"{base}{path}", content=b'{"id": ', headers=headers, timeout=10
    )
    assert response.status_code == 401, (method, path, response.status_code, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
