"""End to end: a coordinator and two real agents on the real Docker engine, over real HTTP.

Two agents join; a container created through the coordinator on one named node runs there and
nowhere else; its lifecycle reaches ``/ws`` through the remote-sync path (``server_update``);
its port shows in ``/api/v1/services``; the seed's ``exec`` example answers ``hello world`` where
exec is enabled and is refused where not; a stopped agent's node goes inactive within
``node_timeout`` and comes back, with its container intact, when the agent starts again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    NODE_TIMEOUT,
    AgentProcess,
    operator,
    running_coordinator,
    start_agent,
    tail_events,
    wait_until,
)

pytestmark = pytest.mark.docker


def _node(client: Any, node_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/nodes/{node_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _state(client: Any, node_id: str, server: str) -> str:
    response = client.get(f"/api/v1/nodes/{node_id}/containers/{server}")
    assert response.status_code == 200, response.text
    result = response.json()
    if result["status"] != "success":
        return f"error: {result['output']}"
    return str(result["data"]["state"])


def test_fleet_end_to_end(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    test_image: str,
    docker_cleanup: Cleanup,
) -> None:
    agents: list[AgentProcess] = []
    with running_coordinator() as base, operator(base) as client, tail_events(base) as events:
        try:
            alpha = start_agent(tmp_path, base, "alpha", allow_exec=True)
            agents.append(alpha)
            beta = start_agent(tmp_path, base, "beta", allow_exec=False)
            agents.append(beta)

            # -- both join, with what the agent says about itself
            def joined() -> bool:
                nodes = {n["id"]: n for n in client.get("/api/v1/nodes").json()["nodes"]}
                return all(
                    nodes.get(a.node_id, {}).get("status") == "active" for a in (alpha, beta)
                )

            wait_until(joined, what="both agents registered and active")
            record = _node(client, alpha.node_id)
            assert record["provider"] == "docker"
            assert record["address"] == "127.0.0.1" and record["port"] == alpha.port
            assert record["capabilities"] == {"docker": True, "exec": True}
            assert record["labels"] == {"role": "alpha"}
            assert "dispatch_key" not in record
            assert _node(client, beta.node_id)["capabilities"]["exec"] is False

            # -- a container created through the coordinator on alpha
            server = f"web-{docker_cleanup.value}"
            spec = {
                "id": server,
                "image": test_image,
                "startup_command": "httpd -f -p 8080",
                "ports": [{"container": 8080}],
                "labels": docker_cleanup.labels,
            }
            created = client.post(f"/api/v1/nodes/{alpha.node_id}/containers", json=spec)
            assert created.status_code == 200, created.text
            assert created.json()["status"] == "success", created.json()
            wait_until(
                lambda: _state(client, alpha.node_id, server) == "running",
                what="the server running on alpha",
            )

            # runs there and nowhere else: Docker's ownership labels say alpha
            owned = docker_client.containers.list(filters={"label": f"lightd.server={server}"})
            assert len(owned) == 1
            assert owned[0].labels["lightd.node"] == alpha.node_id
            container_id = owned[0].id
            on_beta = client.get(f"/api/v1/nodes/{beta.node_id}/containers").json()
            assert on_beta["status"] == "success"
            assert on_beta["data"]["count"] == 0
            on_alpha = client.get(f"/api/v1/nodes/{alpha.node_id}/containers").json()
            assert [c["id"] for c in on_alpha["data"]["containers"]] == [server]

            # -- its lifecycle arrived on /ws through remote sync
            def updates() -> list[str]:
                return [
                    e["data"]["update"].get("status")
                    for e in events.of("server_update")
                    if e["data"]["node"] == alpha.node_id and e["data"]["server"] == server
                ]

            wait_until(
                lambda: {"installing", "ready", "running"} <= set(updates()),
                what="installing, ready and running on /ws",
            )
            assert updates().index("installing") < updates().index("ready")

            # -- its published port shows in services (alpha's only)
            owned[0].reload()
            host_port = int(owned[0].attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])

            def service() -> dict[str, Any] | None:
                listing = client.get("/api/v1/services").json()["services"]
                found = [s for s in listing.get(alpha.node_id, []) if s["name"] == server]
                return found[0] if found else None

            svc = wait_until(service, what="the server's port in /api/v1/services")
            assert svc["port"] == host_port and svc["status"] == "running"
            assert svc["endpoint"] == f"tcp://localhost:{host_port}"
            listing = client.get("/api/v1/services").json()["services"]
            assert all(s["name"] != server for s in listing.get(beta.node_id, []))

            # -- the seed's exec example: where enabled, and where not
            command = {"type": "exec", "action": "echo 'hello world'", "params": {"timeout": "10s"}}
            done = client.post(f"/api/v1/nodes/{alpha.node_id}/commands", json=command).json()
            assert done["status"] == "success", done
            assert done["output"] == "hello world"
            refused = client.post(f"/api/v1/nodes/{beta.node_id}/commands", json=command).json()
            assert refused["status"] == "failed"
            assert "commands.allow_exec" in refused["output"]

            # exec inside the container, through the REST sugar
            inside = client.post(
                f"/api/v1/nodes/{alpha.node_id}/containers/{server}/exec",
                json={"command": "echo inside"},
            ).json()
            assert inside["status"] == "success" and inside["output"].strip() == "inside"

            # -- stopping alpha's process turns its node inactive within node_timeout
            alpha.stop()
            wait_until(
                lambda: _node(client, alpha.node_id)["status"] == "inactive",
                timeout=NODE_TIMEOUT + 2,  # within node_timeout (+ a sweep and a poll)
                what="alpha inactive after its agent stopped",
            )
            assert _node(client, beta.node_id)["status"] == "active"
            # the container lives on without its agent
            owned[0].reload()
            assert owned[0].status == "running"

            # -- restarting brings the node back, its container intact
            alpha.start()
            wait_until(
                lambda: _node(client, alpha.node_id)["status"] == "active",
                what="alpha active again",
            )
            wait_until(
                lambda: _state(client, alpha.node_id, server) == "running",
                what="the server still running after the agent restart",
            )
            again = docker_client.containers.list(filters={"label": f"lightd.server={server}"})
            assert [c.id for c in again] == [container_id]
            wait_until(service, what="the service reported again")

            # -- an agent that dies without a word (kill -9) goes inactive by the timeout
            assert beta.process is not None
            beta.process.kill()
            beta.process.wait(timeout=10)
            wait_until(
                lambda: _node(client, beta.node_id)["status"] == "inactive",
                timeout=NODE_TIMEOUT + 2,
                what="beta inactive after node_timeout",
            )
            assert _node(client, alpha.node_id)["status"] == "active"
        finally:
            for agent in agents:
                agent.stop()
