"""A full disk on the agent (issue 11): a real small tmpfs as its storage, filled for real.

While the state directory cannot be written, lifecycle actions answer 503 with the reason,
``/health`` says degraded, a refused create leaves nothing behind, and every lifecycle change
that happens meanwhile reaches the remote once space is back, without a restart.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, Agent, AgentFactory
from tests.harness.wait import wait_until
from tests.remote.recorder import RemoteServer, running_remote

pytestmark = pytest.mark.docker

REMOTE_TOKEN = "lightd_ad2f7fc49ed640429c450e14ed07c8d5"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A node id and its base directory whose ``storage`` is a real 16 MiB tmpfs."""
    node = f"test-{uuid.uuid4().hex[:10]}"
    storage = tmp_path / node / "storage"
    storage.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(storage)], check=True)
    try:
        yield node, storage
    finally:
        subprocess.run(["umount", "-l", str(storage)], check=False)


@pytest.fixture
def remote() -> Iterator[RemoteServer]:
    yield from running_remote()


def _fill(storage: Path) -> Path:
    """Write until the filesystem says it is full; return the file to remove to free it."""
    filler = storage / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def _statuses(remote: RemoteServer, server: str) -> list[str]:
    seen: dict[str, str] = {}
    for update in remote.updates(200):
        body = update.body
        if body.get("server") == server:
            seen.setdefault(
                update.headers["idempotency-key"], body.get("status", body.get("error"))
            )
    return list(seen.values())


def test_a_full_disk_refuses_new_work_and_loses_no_change(
    small_disk: tuple[str, Path],
    remote: RemoteServer,
    make_agent: AgentFactory,
    docker_client: docker.DockerClient,
    test_image: str,
) -> None:
    node, storage = small_disk
    agent: Agent = make_agent(
        node,
        remote={
            "enabled": True,
            "url": remote.url,
            "token": REMOTE_TOKEN,
            "events": "all",
            "timeout": "2s",
            "health_interval": "200ms",
            "retry_max_delay": "500ms",
        },
    )
    status = agent.install("steady", test_image, startup_command=SERVE)
    assert status["state"] == "running"
    wait_until(lambda: _statuses(remote, "steady")[-1:] == ["running"], what="steady running")

    filler = _fill(storage)
    # a create now cannot write its state file: 503 with the reason, and nothing behind
    response = agent.client.post("/containers", json=agent.spec("refused", test_image))
    assert response.status_code == 503, response.text
    assert "cannot be written" in response.json()["detail"]
    assert agent.client.get("/containers/refused").status_code == 404
    assert not (storage / "state" / "servers" / "refused.json").exists()
    selector = [f"lightd.node={node}", "lightd.server=refused"]
    assert docker_client.containers.list(all=True, filters={"label": selector}) == []
    health = httpx.get(agent.url + "/health").json()
    assert health["status"] == "degraded" and health["storage"]["writable"] is False
    # every lifecycle action is refused while it lasts
    stop = agent.client.post("/containers/steady/stop")
    assert stop.status_code == 503 and "cannot be written" in stop.json()["detail"]

    # the server crashes meanwhile and its policy restarts it: two changes the disk cannot take
    container = docker_client.containers.get(status["container_id"])
    container.kill()
    agent.wait_kinds("steady", [*agent.kinds("steady")[:4], "Crashed", "Running"])

    filler.unlink()  # space is back: no restart, the agent goes on by itself
    wait_until(
        lambda: httpx.get(agent.url + "/health").json()["status"] == "ok",
        what="/health ok again",
    )
    wait_until(
        lambda: _statuses(remote, "steady")[-2:] == ["crashed", "running"],
        what="the crash and the restart reaching the remote",
    )
    saved = (storage / "state" / "servers" / "steady.json").read_text()
    assert '"running"' in saved
    again = agent.client.post("/containers", json=agent.spec("later", test_image))
    assert again.status_code == 202, again.text
