"""Sources no policy switch hands out: the agent's state dir, servers' volumes, their volumes.

``storage.state_dir`` holds every server's spec and ``dispatch.key`` (the key the coordinator
signs commands with); ``storage.volumes_dir`` holds every server's files; ``lightd-*`` named
volumes are servers' own. A request may mount none of them, however it spells the path, and a
spec that names one in a state file (tampered while the agent was down) is never started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.config import PolicySection, StorageSection, load_config
from lightd_agent.errors import PolicyRefused
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.policy import check_spec
from lightd_shared.containers import ContainerSpec
from tests.agent.conftest import SERVE, TOKEN, Agent, remove_node, write_config
from tests.harness.docker import Cleanup
from tests.harness.servers import serve
from tests.harness.wait import wait_until


def _spec(*volumes: str) -> ContainerSpec:
    return ContainerSpec.model_validate({"id": "s", "image": "i", "volumes": list(volumes)})


def test_state_and_volume_dirs_are_refused_however_spelled(tmp_path: Path) -> None:
    storage = StorageSection(base_path=tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "volumes" / "other").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "sneaky").symlink_to(tmp_path / "state")
    (tmp_path / "alias").symlink_to(tmp_path)
    refused = {
        f"{tmp_path}/state:/x": "inside the agent's own state directory",
        f"{tmp_path}/state/dispatch.key:/key:ro": "inside the agent's own state directory",
        f"{tmp_path}/state/servers:/x": "inside the agent's own state directory",
        f"{tmp_path}/shared/sneaky:/x": "is a symlink",
        f"{tmp_path}/shared/sneaky/servers:/x": "is a symlink",
        f"{tmp_path}/alias/state:/x": "is a symlink",
        f"{tmp_path}/volumes:/x": "inside the directory of every server's own volume",
        f"{tmp_path}/volumes/other:/x": "inside the directory of every server's own volume",
        f"{tmp_path}:/x": "it contains the agent's own state directory",
        f"{tmp_path}/alias:/x": "is a symlink",
        "/:/host": "it contains the agent's own state directory",
    }
    for policy in (PolicySection(), PolicySection(allow_bind_outside_storage=True)):
        for volume, reason in refused.items():
            with pytest.raises(PolicyRefused) as caught:
                check_spec(_spec(volume), policy, storage)
            assert reason in caught.value.message, (volume, caught.value.message)
            assert "no policy switch allows it" in caught.value.message
    allowed = _spec(f"{tmp_path}/shared:/srv", f"{tmp_path}/statements:/s", "cache:/cache")
    check_spec(allowed, PolicySection(), storage)


def test_no_symlink_below_base_path_even_a_harmless_one(tmp_path: Path) -> None:
    """A link that points somewhere harmless today can be re-pointed by a server tomorrow."""
    (tmp_path / "base" / "data").mkdir(parents=True)
    (tmp_path / "base" / "link").symlink_to(tmp_path / "base" / "data")
    storage = StorageSection(base_path=tmp_path / "base")
    with pytest.raises(PolicyRefused, match="is a symlink"):
        check_spec(_spec(f"{tmp_path}/base/link:/x"), PolicySection(), storage)
    # a symlink above base_path is the host owner's layout, not a server's doing
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "data").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    check_spec(
        _spec(f"{tmp_path}/via/data:/x"),
        PolicySection(),
        StorageSection(base_path=tmp_path / "via"),
    )


@pytest.mark.docker
def test_a_source_turned_into_a_symlink_after_create_is_refused_at_start(
    agent: Agent, test_image: str
) -> None:
    storage = agent.config.storage
    source = Path(storage.base_path) / "shared" / "sub"
    source.mkdir(parents=True)
    body = agent.spec("later", test_image, startup_command=SERVE, volumes=[f"{source}:/x"])
    assert agent.client.post("/containers", json=body).status_code == 202
    agent.wait_state("later", "running")
    assert agent.client.post("/containers/later/stop").status_code == 200
    source.rmdir()  # what a server with write access to base_path/shared could do
    source.symlink_to(storage.state_dir)
    started = agent.client.post("/containers/later/start")
    assert started.status_code == 403, started.text
    assert "is a symlink" in started.json()["detail"]
    assert agent.client.get("/containers/later/status").json()["state"] != "running"


def test_servers_own_named_volumes_are_refused(tmp_path: Path) -> None:
    storage = StorageSection(base_path=tmp_path)
    open_policy = PolicySection(allow_bind_outside_storage=True)
    for name in ("lightd-node1-web-data", "lightd-x"):
        with pytest.raises(PolicyRefused, match="servers' own volumes"):
            check_spec(_spec(f"{name}:/steal"), open_policy, storage)
    check_spec(_spec("lightdcache:/c", "my-lightd-data:/d"), PolicySection(), storage)


@pytest.mark.docker
def test_api_refuses_the_state_dir_with_403(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    storage = agent.config.storage
    other_volume = f"lightd-{agent.node}-victim-data"
    for volume, words in [
        (f"{storage.base_path}/state:/x", "the agent's own state directory"),
        (f"{storage.state_dir}/dispatch.key:/key:ro", "the agent's own state directory"),
        (f"{storage.volumes_dir}/victim:/x", "every server's own volume"),
        (f"{other_volume}:/x", "servers' own volumes"),
    ]:
        body = agent.spec("thief", test_image, startup_command=SERVE, volumes=[volume])
        response = agent.client.post("/containers", json=body)
        assert response.status_code == 403, (volume, response.text)
        assert words in response.json()["detail"], (volume, response.text)
    assert agent.client.get("/containers").json()["count"] == 0
    assert agent.owned(docker_client) == []


@contextmanager
def _agent(config_path: Path) -> Iterator[tuple[httpx.Client, list[LifecycleEvent]]]:
    bus = EventBus()
    events: list[LifecycleEvent] = []
    bus.add_listener(events.append)
    app = create_app(load_config(config_path), config_path=config_path, bus=bus)
    with (
        serve(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        yield client, events


def _wait_state(client: httpx.Client, server: str, state: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status: dict[str, Any] = client.get(f"/containers/{server}/status").json()
        return status if status.get("state") == state else None

    result: dict[str, Any] = wait_until(reached, 30, what=f"{server} {state}")
    return result


@pytest.mark.docker
def test_a_tampered_state_file_is_not_started(
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = f"test-tamper-{docker_cleanup.value}"
    config_path = write_config(tmp_path, node)
    state_dir = load_config(config_path).storage.state_dir
    spec = {
        "id": "victim",
        "image": test_image,
        "startup_command": SERVE,
        "labels": dict(docker_cleanup.labels),
    }
    try:
        with _agent(config_path) as (client, _events):
            assert client.post("/containers", json=spec).status_code == 202
            _wait_state(client, "victim", "running")
            assert client.post("/containers/victim/stop", json={"timeout": "1s"}).is_success
        record_path = state_dir / "servers" / "victim.json"
        record = json.loads(record_path.read_text())
        # tampered while the agent was down: mount its own state dir, and claim it was running
        # (so recovery would treat the stopped container as a crash and restart it)
        record["spec"]["volumes"] = [f"{state_dir}:/stolen"]
        record["state"] = "running"
        record_path.write_text(json.dumps(record))

        caplog.set_level(logging.ERROR, logger="lightd_agent.lifecycle")
        with _agent(config_path) as (client, events):
            status = client.get("/containers/victim/status").json()
            assert status["state"] == "failed", status
            assert "refused by this agent's policy" in status["error"]
            assert "the agent's own state directory" in status["error"]
            assert [e.kind for e in events if e.server == "victim"] == ["Error"]
            started = client.post("/containers/victim/start")
            assert started.status_code == 403, started.text
            assert "refused by this agent's policy" in started.json()["detail"]
            reinstall = client.post("/containers/victim/reinstall")
            assert reinstall.status_code == 403, reinstall.text
            containers = docker_client.containers.list(
                all=True, filters={"label": f"lightd.node={node}"}
            )
            assert [c.status for c in containers] == ["exited"]
            assert client.get("/health").status_code == 200  # the agent itself is fine
        messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("victim" in m and "own state directory" in m for m in messages), messages
    finally:
        remove_node(docker_client, node)
