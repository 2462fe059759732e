"""Bad input, policy refusals and auth failures: a 4xx that says what to fix, nothing changed.

After every refused request the agent's state is unchanged (same servers, same states) and no
container or volume was left behind on the engine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, Agent

pytestmark = pytest.mark.docker


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A TCP port something else on this host is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _snapshot(agent: Agent, docker_client: docker.DockerClient) -> tuple[Any, ...]:
    listing = agent.client.get("/containers").json()
    states = sorted((c["id"], c["state"]) for c in listing["containers"])
    containers = sorted(c.id for c in agent.owned(docker_client))
    volumes = sorted(
        v.name for v in docker_client.volumes.list(filters={"label": f"lightd.node={agent.node}"})
    )
    return states, containers, volumes, len(agent.events)


def test_bad_create_bodies_change_nothing(
    agent: Agent, test_image: str, docker_client: docker.DockerClient, busy_port: int
) -> None:
    agent.install("existing", test_image, startup_command=SERVE)
    before = _snapshot(agent, docker_client)
    good = agent.spec("new", test_image, startup_command=SERVE)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("malformed JSON", {"content": b'{"id": "new", "image": '}, 422, "JSON"),
        ("bad port", {"json": {**good, "ports": [{"container": 70000}]}}, 422, "ports.0.container"),
        ("port as text", {"json": {**good, "ports": [{"container": "80"}]}}, 422, "ports.0"),
        (
            "port in use",
            {"json": {**good, "ports": [{"container": 80, "host": busy_port}]}},
            409,
            f"host port {busy_port}/tcp is already in use",
        ),
        (
            "invalid memory",
            {"json": {**good, "limits": {"memory": "lots"}}},
            422,
            "limits.memory",
        ),
        ("memory too small", {"json": {**good, "limits": {"memory": 1024}}}, 422, "minimum"),
        ("negative cpu", {"json": {**good, "limits": {"cpu": -1}}}, 422, "limits.cpu"),
        ("unknown field", {"json": {**good, "privilegd": True}}, 422, "privilegd"),
        ("bad id", {"json": {**good, "id": "../etc"}}, 422, "id"),
        ("missing image", {"json": {"id": "new"}}, 422, "image"),
        ("bad volume", {"json": {**good, "volumes": ["nocolon"]}}, 422, "volumes.0"),
        ("duplicate id", {"json": {**good, "id": "existing"}}, 409, "already exists"),
        ("reserved label", {"json": {**good, "labels": {"lightd.node": "x"}}}, 422, "reserved"),
        ("oversized body", {"json": {**good, "env": {"BIG": "x" * 2_000_000}}}, 413, "larger"),
    ]
    headers = {"Content-Type": "application/json"}
    for name, kwargs, code, words in cases:
        response = agent.client.post("/containers", headers=headers, **kwargs)
        assert response.status_code == code, (name, response.text)
        assert words in response.json()["detail"], (name, response.text)
        assert _snapshot(agent, docker_client) == before, name


def test_policy_refusals_name_the_option_and_the_switch(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    before = _snapshot(agent, docker_client)
    good = agent.spec("risky", test_image, startup_command=SERVE)
    cases = [
        ({"privileged": True}, "policy.allow_privileged"),
        ({"network_mode": "host"}, "policy.allow_host_network"),
        ({"pid_mode": "host"}, "policy.allow_host_pid"),
        ({"cap_add": ["SYS_ADMIN"]}, "policy.allow_cap_add"),
        ({"volumes": ["/etc:/host-etc:ro"]}, "policy.allow_bind_outside_storage"),
        ({"volumes": [f"{agent.config.storage.base_path}/../x:/x"]}, "volumes.0"),
    ]
    for fields, words in cases:
        response = agent.client.post("/containers", json={**good, **fields})
        assert response.status_code in (403, 422), (fields, response.text)
        assert words in response.json()["detail"], (fields, response.text)
        assert _snapshot(agent, docker_client) == before, fields


def test_policy_allows_what_the_config_enables(make_agent: Any, test_image: str) -> None:
    agent = make_agent(policy={"allow_cap_add": True})
    storage = agent.config.storage.base_path
    (storage / "shared").mkdir(parents=True)
    (storage / "shared" / "hello.txt").write_text("from the host\n")
    status = agent.install(
        "allowed",
        test_image,
        startup_command=SERVE,
        cap_add=["NET_ADMIN"],
        volumes=[f"{storage}/shared:/srv:ro"],
    )
    assert status["state"] == "running"
    result = agent.client.post("/containers/allowed/exec", json={"command": "cat /srv/hello.txt"})
    assert result.json()["output"] == "from the host\n"


def test_unknown_ids_answer_404_everywhere(agent: Agent) -> None:
    routes = [
        ("GET", "/containers/nope"),
        ("GET", "/containers/nope/status"),
        ("POST", "/containers/nope/start"),
        ("POST", "/containers/nope/stop"),
        ("POST", "/containers/nope/restart"),
        ("POST", "/containers/nope/kill"),
        ("POST", "/containers/nope/reinstall"),
        ("DELETE", "/containers/nope"),
        ("GET", "/containers/nope/logs"),
        ("GET", "/containers/nope/stats"),
    ]
    for method, path in routes:
        response = agent.client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert "nope" in response.json()["detail"]
    response = agent.client.post("/containers/nope/exec", json={"command": "true"})
    assert response.status_code == 404


def test_bad_action_bodies(agent: Agent, test_image: str) -> None:
    agent.install("target", test_image, startup_command=SERVE)
    for body, words in [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 10}, "timeout"),
        ({"timeout": "-1s"}, "negative"),
        ({"grace": "1s"}, "grace"),
    ]:
        response = agent.client.post("/containers/target/stop", json=body)
        assert response.status_code == 422, body
        assert words in response.json()["detail"], response.text
    assert agent.status("target")["state"] == "running"
    response = agent.client.post("/containers/target/exec", json={"command": ""})
    assert response.status_code == 422
    response = agent.client.get("/containers/target/logs", params={"tail": "-3"})
    assert response.status_code == 422
    assert "tail" in response.json()["detail"]


def test_auth_is_required_everywhere_but_health(agent: Agent, test_image: str) -> None:
    anonymous = httpx.Client(base_url=agent.url, timeout=10)
    wrong = httpx.Client(
        base_url=agent.url, timeout=10, headers={"Authorization": "Bearer lightd_" + "f" * 32}
    )
    basic = httpx.Client(
        base_url=agent.url, timeout=10, headers={"Authorization": f"Basic {TOKEN}"}
    )
    routes = [
        ("GET", "/containers"),
        ("POST", "/containers"),
        ("GET", "/containers/x"),
        ("GET", "/containers/x/status"),
        ("POST", "/containers/x/start"),
        ("POST", "/containers/x/stop"),
        ("POST", "/containers/x/kill"),
        ("POST", "/containers/x/restart"),
        ("POST", "/containers/x/reinstall"),
        ("DELETE", "/containers/x"),
        ("GET", "/containers/x/logs"),
        ("GET", "/containers/x/stats"),
        ("POST", "/containers/x/exec"),
        ("GET", "/events"),
        ("GET", "/openapi.json"),
    ]
    with anonymous, wrong, basic:
        for client in (anonymous, wrong, basic):
            for method, path in routes:
                response = client.request(method, path, json=agent.spec("x", test_image))
                assert response.status_code == 401, (method, path, response.text)
                assert "token" in response.json()["detail"]
                assert response.headers["www-authenticate"] == "Bearer"
        health = anonymous.get("/health")
        assert health.status_code == 200
        assert health.json()["docker"]["reachable"] is True
        # no pages a browser could open without the token; the schema opens with it
        assert anonymous.get("/docs").status_code == 404
        assert anonymous.get("/redoc").status_code == 404
    schema = agent.client.get("/openapi.json")
    assert schema.status_code == 200 and "/containers" in schema.json()["paths"]
    assert "/openapi.json" not in schema.json()["paths"]
    assert agent.client.get("/containers").json()["count"] == 0


def test_auth_can_be_disabled(make_agent: Any) -> None:
    agent = make_agent(authorization={"enabled": False, "token": None})
    with httpx.Client(base_url=agent.url, timeout=10) as anonymous:
        assert anonymous.get("/containers").json() == {"containers": [], "count": 0}
        assert anonymous.get("/docs").status_code == 200
        assert "/containers" in anonymous.get("/openapi.json").json()["paths"]
