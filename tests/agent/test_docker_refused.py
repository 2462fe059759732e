"""A Docker API error that no route turned into an agent error is never a 500.

Found by schemathesis: ``GET /containers/{id}/logs`` racing a delete or reinstall got Docker's
409 "can not get logs from container which is dead or marked for removal", and answered 500.
"""

from __future__ import annotations

import json

import docker
import docker.errors
import pytest
from starlette.requests import Request

from lightd_agent.app import _docker_refused
from tests.agent.conftest import SERVE, Agent

pytestmark = pytest.mark.docker


async def _answer(exc: docker.errors.APIError) -> tuple[int, dict[str, str]]:
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/containers/x/logs",
            "headers": [],
            "query_string": b"",
        }
    )
    response = await _docker_refused(request, exc)
    return response.status_code, json.loads(bytes(response.body))


@pytest.mark.anyio
async def test_dockers_own_conflict_and_not_found_keep_their_status(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent.install("busy", test_image, startup_command=SERVE)
    (container,) = agent.owned(docker_client)
    with pytest.raises(docker.errors.APIError) as conflict:  # a real 409 from the engine
        docker_client.api.remove_container(container.id)
    status, body = await _answer(conflict.value)
    assert status == 409 and body["detail"].startswith("Docker refused the call: ")
    with pytest.raises(docker.errors.NotFound) as missing:
        docker_client.api.inspect_container("lightd-no-such-container")
    assert (await _answer(missing.value))[0] == 404
    with pytest.raises(docker.errors.APIError) as bad:  # a 400: invalid reference format
        docker_client.api.create_container("Not A Valid:Image Name")
    assert (await _answer(bad.value))[0] == 502
