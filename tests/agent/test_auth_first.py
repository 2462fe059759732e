"""The token is checked before the body is read, on every route of the agent.

FastAPI parses a JSON body before a route's dependencies run, so ``POST /commands`` without a
token and with malformed JSON answered 422 before 401. Now every route but ``/health`` answers
401 to a caller without a valid token, whatever its body.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.agent.conftest import TOKEN, AgentFactory
from tests.harness.servers import free_port

pytestmark = pytest.mark.docker


def test_every_route_answers_401_before_reading_the_body(make_agent: AgentFactory) -> None:
    agent = make_agent(
        coordinator={
            "enabled": True,
            "url": f"http://127.0.0.1:{free_port()}",
            "token": TOKEN,
            "advertise_address": "127.0.0.1",
        },
        # two refused calls per route from one client: more than the failed-auth limit lets
        # through (its 429s are tested in test_ratelimit.py); this test is about the 401s
        server={"host": "127.0.0.1", "port": 8070, "rate_limit": {"burst": 100_000}},
    )
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", template))
        for template, operations in agent.app.openapi()["paths"].items()
        if template != "/health"
        for method in operations
    ]
    assert ("POST", "/commands") in routes
    assert ("POST", "/containers") in routes
    assert len(routes) > 20
    wrong = []
    with httpx.Client(base_url=agent.url, timeout=10) as client:
        for method, path in routes:
            for auth in ({}, {"Authorization": "Bearer wrong"}):
                response = client.request(
                    method,
                    path,
                    content=b'{"id": ',
                    headers={"Content-Type": "application/json", **auth},
                )
                if response.status_code != 401 or "www-authenticate" not in response.headers:
                    wrong.append((method, path, bool(auth), response.status_code))
    assert wrong == []
