"""A restore cut off by SIGKILL of the agent (a real ``lightd run`` process) at several points.

The agent is killed while the archive is being extracted, while the old content is being moved
aside, while the new content is being moved in, and during the cleanup (the point is read from
the restore journal the agent left on disk). Started again, it finishes or rolls back the
restore before any server starts: the volume then holds the old content (cut during the
extraction) or the new one (cut once the swap had begun), whole, never a mix. A backup cut off
the same way is ``failed`` after the restart, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.agent.conftest import SERVE, TOKEN, remove_node, write_config
from tests.backups.volume import backup, snapshot
from tests.harness.docker import Cleanup
from tests.harness.servers import free_port
from tests.harness.wait import wait_until
from tests.integration.fleet import AgentProcess

pytestmark = pytest.mark.docker

SERVER = "killme"
CUTS = ("extracting", "swap-out", "swap-in", "cleanup")
ENTRIES = 3000  # top-level entries: the swap moves each, so it takes long enough to cut


@pytest.fixture
def node(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"test-{os.urandom(5).hex()}"
    try:
        yield name
    finally:
        remove_node(docker_client, name)


def _content(root: Path, label: str) -> None:
    for child in list(root.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for i in range(ENTRIES):
        (root / f"{label}-{i:05d}.txt").write_text(f"{label} {i}\n")
    big = root / f"{label}-big"
    big.mkdir()
    for i in range(12):  # incompressible, so the extraction takes a while
        (big / f"chunk-{i}").write_bytes(os.urandom(2 * 1024 * 1024))
    (root / f"{label}-link").symlink_to(f"{label}-00001.txt")


def _phase(journal: Path) -> str | None:
    try:
        return str(json.loads(journal.read_bytes())["phase"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def test_restore_killed_midway_leaves_old_or_new_whole(
    tmp_path: Path, node: str, test_image: str, docker_cleanup: Cleanup
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        node,
        server={"host": "127.0.0.1", "port": port},
        logging={"json": True},
        backups={"stop_timeout": "5s"},
    )
    agent = AgentProcess(config=config, log=tmp_path / "agent.log", node_id=node, port=port)
    client = httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    storage = tmp_path / "storage"
    root = storage / "volumes" / SERVER
    journal = storage / "state" / "restores" / f"{SERVER}.json"
    observed: list[str | None] = []
    try:
        agent.start()
        body = {
            "id": SERVER,
            "image": test_image,
            "labels": dict(docker_cleanup.labels),
            "startup_command": SERVE,
        }
        assert client.post("/containers", json=body).status_code == 202
        wait_until(
            lambda: client.get(f"/containers/{SERVER}/status").json()["state"] == "running",
            60,
            what="the server running",
        )
        # a backup cut off by the kill is failed after the restart, its partial archive gone
        (root / "huge.bin").write_bytes(os.urandom(64 * 1024 * 1024))
        started = client.post(f"/containers/{SERVER}/backups")
        assert started.status_code == 202, started.text
        cut_id = started.json()["id"]
        partial = storage / "state" / "backups" / SERVER / f"{cut_id}.tar.gz.partial"
        wait_until(partial.exists, 30, interval=0.001, what="the backup writing its archive")
        agent.kill()
        agent.start()
        cut = client.get(f"/containers/{SERVER}/backups/{cut_id}").json()
        assert cut["state"] == "failed", cut
        assert "the agent stopped while this backup was running" in cut["error"]
        assert not partial.exists()
        assert client.delete(f"/containers/{SERVER}/backups/{cut_id}").status_code == 200
        (root / "huge.bin").unlink()
        if client.get(f"/containers/{SERVER}/status").json()["state"] != "running":
            assert client.post(f"/containers/{SERVER}/start").status_code == 200

        _content(root, "new")
        new = snapshot(root)
        info = backup(client, SERVER)
        assert info["state"] == "completed", info

        for cut in CUTS:
            _content(root, "old")
            old = snapshot(root)
            state = client.get(f"/containers/{SERVER}/status").json()["state"]
            if state != "running":
                assert client.post(f"/containers/{SERVER}/start").status_code == 200
            response = client.post(f"/containers/{SERVER}/backups/{info['id']}/restore")
            assert response.status_code == 202, response.text
            wait_until(
                lambda cut=cut: (
                    _phase(journal) == cut  # type: ignore[misc]
                    or client.get(f"/containers/{SERVER}/backups/{info['id']}").json()[
                        "last_restore"
                    ]["state"]
                    != "running"
                ),
                60,
                interval=0.0005,
                what=f"the restore's {cut} phase",
            )
            agent.kill()
            at_kill = _phase(journal)
            observed.append(at_kill)
            agent.start()

            after = snapshot(root)
            expected = old if at_kill == "extracting" else new
            assert after == expected, f"cut at {at_kill}: the volume is neither whole"
            assert not (root / ".lightd-restore").exists()
            assert not journal.exists()
            last = client.get(f"/containers/{SERVER}/backups/{info['id']}").json()["last_restore"]
            if at_kill is None:
                assert last["state"] == "completed", last
            else:
                assert last["state"] == "failed", last
                assert "the agent stopped" in last["error"]
                kept = "old" if at_kill == "extracting" else "new"
                assert f"the {kept} content" in last["error"]
        # the cut points really were in the middle of the restore, on both sides of the swap
        assert "extracting" in observed, observed
        assert {"swap-out", "swap-in", "cleanup"} & set(observed), observed
    finally:
        client.close()
        agent.stop()
        logs: Any = agent.logs()
        assert "Traceback" not in logs, logs
