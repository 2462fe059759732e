"""Concurrent creates: the id and the host ports are claimed before the agent waits on Docker.

Without the claim, every request passes the duplicate checks while the first one waits for
Docker's answer, and both get 202 for one id (or one host port).
"""

from __future__ import annotations

import anyio
import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, Agent
from tests.harness.servers import free_port

pytestmark = pytest.mark.docker

_CONCURRENT = 4


async def _post_all(agent: Agent, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(
        base_url=agent.url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def post(body: dict[str, object]) -> None:
            responses.append(await client.post("/containers", json=body))

        async with anyio.create_task_group() as group:
            for body in bodies:
                group.start_soon(post, body)
    return responses


@pytest.mark.anyio
async def test_concurrent_creates_of_one_id_give_one_202(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    body = agent.spec("twin", test_image, startup_command=SERVE)
    responses = await _post_all(agent, [body] * _CONCURRENT)
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * (_CONCURRENT - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert "'twin'" in response.json()["detail"], response.text
    await anyio.to_thread.run_sync(lambda: agent.wait_state("twin", "running"))
    servers = [c for c in agent.owned(docker_client) if c.labels["lightd.role"] == "server"]
    assert len(servers) == 1


@pytest.mark.anyio
async def test_concurrent_creates_of_one_host_port_give_one_202(
    agent: Agent, test_image: str
) -> None:
    port = free_port()
    bodies = [
        agent.spec(
            f"rival-{n}", test_image, startup_command=SERVE, ports=[{"container": 80, "host": port}]
        )
        for n in range(_CONCURRENT)
    ]
    responses = await _post_all(agent, bodies)
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * (_CONCURRENT - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert f"host port {port}/tcp" in response.json()["detail"], response.text
    listing = agent.client.get("/containers").json()
    assert listing["count"] == 1
    (winner,) = listing["containers"]
    assert agent.wait_state(winner["id"], "running")["state"] == "running"
    # the claim was released: the port is the winner's, the loser's ids are free again
    again = agent.client.post(
        "/containers",
        json=agent.spec("late", test_image, ports=[{"container": 80, "host": port}]),
    )
    assert again.status_code == 409 and f"used by server {winner['id']!r}" in again.text
