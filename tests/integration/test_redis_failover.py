"""A real agent listing two coordinator replicas (one Redis) fails over when its replica dies."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
import redis as redis_sync

from tests.coordinator.replicas import replicas
from tests.harness.redis import RedisServer
from tests.integration.fleet import (
    AGENT_TOKEN,
    JWT_SECRET,
    NODE_TIMEOUT,
    STATIC,
    agent_document,
    run_agent,
    wait_until,
)

pytestmark = pytest.mark.docker

OPERATOR = {"Authorization": f"Bearer {STATIC}"}


def test_an_agent_fails_over_to_the_other_replica(
    tmp_path: Path, redis: RedisServer, docker_client: docker.DockerClient
) -> None:
    sections = {
        "server": {"auth_token": STATIC},
        "registry": {"health_check_interval": "200ms", "node_timeout": f"{NODE_TIMEOUT}s"},
        "auth": {"enabled": True, "jwt_secret": JWT_SECRET, "agent_token": AGENT_TOKEN},
    }
    with (
        replicas(tmp_path / "replicas", redis.url, 2, **sections) as (a, b),
        httpx.Client(headers=OPERATOR, timeout=30) as client,
    ):
        node_id = f"failover-{uuid.uuid4().hex[:8]}"
        document = agent_document(tmp_path, a.url, node_id, allow_exec=True)
        document["coordinator"]["urls"] = [b.url]
        agent = run_agent(tmp_path, document)
        try:

            def status() -> str:
                return str(client.get(f"{b.url}/api/v1/nodes/{node_id}").json().get("status"))

            wait_until(lambda: status() == "active", what="the agent enrolled through A")

            def using() -> str:
                health = httpx.get(f"http://127.0.0.1:{agent.port}/health", timeout=5).json()
                return str(health["coordinator"]["url"])

            assert using() == a.url
            a.kill()
            wait_until(lambda: using() == b.url, what="the agent heartbeating B")
            # longer than the node timeout: the node never turned inactive. Watching for a
            # span of time is the behaviour under test here, so this loop keeps its pace.
            watched = time.monotonic() + 2 * NODE_TIMEOUT
            while time.monotonic() < watched:
                assert status() == "active", agent.logs()[-3000:]
                time.sleep(0.2)
            log = redis_sync.Redis.from_url(redis.url, decode_responses=True)
            entries = log.xrange("lightd:events")
            kinds = [fields["t"] for _, fields in entries if fields["n"] == node_id]
            log.close()
            assert "node_inactive" not in kinds and "node_registered" in kinds
            result = client.post(
                f"{b.url}/api/v1/nodes/{node_id}/commands",
                json={"type": "exec", "action": "echo failed over", "params": {"timeout": "20s"}},
            ).json()
            assert result["status"] == "success", result
            assert "failed over" in result["output"]
            assert "failing over to" in agent.logs()
        finally:
            agent.stop()
