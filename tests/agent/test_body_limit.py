"""Request bodies on a real agent: the size limit (declared or chunked), and JSON sent untyped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.conftest import Agent

pytestmark = pytest.mark.docker

_LIMIT = 4096
_TOO_LARGE = f"request body is larger than {_LIMIT} bytes (server.max_body_size)"


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    """A body without a length: httpx sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_an_oversized_chunked_body_gets_the_same_413(make_agent: Any, test_image: str) -> None:
    agent: Agent = make_agent(server={"max_body_size": _LIMIT})
    big = json.dumps(agent.spec("big", test_image, env={"BIG": "x" * (4 * _LIMIT)})).encode()
    headers = {"Content-Type": "application/json"}
    declared = agent.client.post("/containers", content=big, headers=headers)
    assert declared.status_code == 413, declared.text
    assert declared.json() == {"detail": _TOO_LARGE}
    for path in ("/containers", "/containers/big/stop"):
        chunked = agent.client.post(path, content=_chunks(big), headers=headers)
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert chunked.status_code == 413, (path, chunked.text)
        assert chunked.json() == {"detail": _TOO_LARGE}
    small = json.dumps({"id": "small"}).encode()  # chunked and under the limit: read as usual
    response = agent.client.post("/containers", content=_chunks(small, 4), headers=headers)
    assert response.status_code == 422 and "image" in response.json()["detail"], response.text
    assert agent.client.get("/containers").json()["count"] == 0


def test_json_without_its_content_type_is_told_to_set_it(agent: Agent, test_image: str) -> None:
    body = json.dumps(agent.spec("untyped", test_image)).encode()
    hint = "send it with the header Content-Type: application/json"
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = agent.client.post("/containers", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert hint in response.json()["detail"], (headers, response.text)
    not_an_object = agent.client.post("/containers", json=["a", "list"])
    assert not_an_object.status_code == 422
    assert "valid dictionary" in not_an_object.json()["detail"]
    assert hint not in not_an_object.json()["detail"]  # it was read as JSON: no hint
    assert agent.client.get("/containers").json()["count"] == 0
