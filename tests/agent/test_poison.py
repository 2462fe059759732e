"""A lone surrogate anywhere in a container spec is a 422, and the agent keeps answering.

Such a spec used to be accepted, after which ``GET /containers`` answered 500 (the stored spec
could not be encoded again).
"""

from __future__ import annotations

import json

import docker
import pytest

from tests.agent.conftest import Agent

pytestmark = pytest.mark.docker

HOLE = "HOLE"


def _raw(body: dict[str, object], raw: str) -> bytes:
    return json.dumps(body).replace(json.dumps(HOLE), raw).encode()


@pytest.mark.parametrize(
    "field",
    ["env value", "env name", "label value", "label key", "startup_command", "install_script"],
)
def test_unencodable_spec_text_is_refused(
    agent: Agent, test_image: str, docker_client: docker.DockerClient, field: str
) -> None:
    spec = agent.spec("poisoned", test_image)
    if field == "env value":
        spec["env"] = {"A": HOLE}
    elif field == "env name":
        spec["env"] = {HOLE: "a"}
    elif field == "label value":
        spec["labels"] = {**spec["labels"], "x": HOLE}
    elif field == "label key":
        spec["labels"] = {**spec["labels"], HOLE: "x"}
    else:
        spec[field] = HOLE
    response = agent.client.post(
        "/containers",
        content=_raw(spec, '"a\\ud800b"'),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    text = response.content.decode("utf-8")  # the answer is valid UTF-8
    assert "surrogate" in response.json()["detail"], text

    listing = agent.client.get("/containers")
    assert listing.status_code == 200, listing.text
    assert listing.json()["count"] == 0
    assert agent.owned(docker_client) == []


def test_deep_exec_command_is_refused(agent: Agent) -> None:
    body = b'{"command": ' + b"[" * 600 + b"]" * 600 + b"}"
    response = agent.client.post(
        "/containers/none/exec", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "nested more than" in response.json()["detail"]
