"""Backups to the local target, on a real agent (uvicorn on loopback) and the real engine.

Backup, change the files, restore: every file is back bit for bit (hash, mode, owner, link);
the ignore list is honoured; retention deletes the oldest; a tampered archive fails the restore
and keeps the old data; the download streams the archive with the recorded checksum.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from lightd_shared.timestamps import parse_timestamp
from tests.agent.conftest import SERVE, Agent, AgentFactory
from tests.backups.volume import (
    backup,
    change,
    fill,
    restore,
    snapshot,
    wait_backup,
    wait_restore,
)

pytestmark = pytest.mark.docker


def _root(agent: Agent, server: str) -> Path:
    root = agent.config.storage.volumes_dir / server
    assert root.is_dir(), f"the server's volume {root} was not made"
    return root


def test_backup_change_restore_gives_every_file_back(agent: Agent, test_image: str) -> None:
    agent.install("web", test_image, startup_command=SERVE)
    root = _root(agent, "web")
    fill(root)
    # a file the server itself writes, inside its container, through /data
    result = agent.client.post(
        "/containers/web/exec", json={"command": "echo from-inside > /data/inside.txt"}
    )
    assert result.json()["status"] == "success", result.text
    before = snapshot(root)
    assert before["latest"][0] == "link" and before["world/hard.dat"][5] == 2

    info = backup(agent.client, "web")
    assert info["state"] == "completed", info
    assert info["target"] == "local"
    assert len(info["checksum"]) == 64 and info["size"] > 0 and info["error"] is None

    change(root)
    assert snapshot(root) != before
    done = restore(agent.client, "web", info["id"])
    assert done["last_restore"]["state"] == "completed", done
    assert snapshot(root) == before
    assert agent.status("web")["state"] == "running"  # it was running: started again
    inside = agent.client.post("/containers/web/exec", json={"command": "cat /data/inside.txt"})
    assert inside.json()["output"].strip() == "from-inside"
    kinds = agent.kinds("web")
    for kind in ("backup_started", "backup_completed", "restore_started", "restore_completed"):
        assert kind in kinds, kinds
    assert (
        kinds.index("restore_started") < kinds.index("Stopped") < kinds.index("restore_completed")
    )
    assert not (root / ".lightd-restore").exists()
    listed = agent.client.get("/containers/web/backups").json()
    assert listed["count"] == 1 and listed["backups"][0]["id"] == info["id"]


def test_ignore_list_and_download(make_agent: AgentFactory, test_image: str) -> None:
    agent = make_agent(backups={"ignore": ["cache/"]})
    agent.install("ign", test_image, startup_command=SERVE)
    root = _root(agent, "ign")
    fill(root)
    (root / "logs").mkdir()
    (root / "logs" / "latest.log").write_text("noise")
    (root / "cache").mkdir()
    (root / "cache" / "blob").write_bytes(b"x" * 100)
    (root / "world" / "tmp.tmp").write_text("temp")
    (root / "keep.tmp").write_text("kept: re-included with !")

    info = backup(agent.client, "ign", ignore=["logs/", "*.tmp", "!keep.tmp"])
    assert info["state"] == "completed", info
    assert info["ignored"] == ["cache/", "logs/", "*.tmp", "!keep.tmp"]

    response = agent.client.get(f"/containers/ign/backups/{info['id']}/download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert int(response.headers["content-length"]) == info["size"] == len(response.content)
    assert hashlib.sha256(response.content).hexdigest() == info["checksum"]
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "keep.tmp" in names and "server.properties" in names and "world/region" in names
    for left_out in ("logs", "logs/latest.log", "cache", "cache/blob", "world/tmp.tmp"):
        assert left_out not in names, left_out

    restore(agent.client, "ign", info["id"])
    assert not (root / "logs").exists() and not (root / "world" / "tmp.tmp").exists()
    assert (root / "keep.tmp").read_text() == "kept: re-included with !"


def test_retention_deletes_the_oldest(make_agent: AgentFactory, test_image: str) -> None:
    agent = make_agent(backups={"retention": 2})
    agent.install("ret", test_image, startup_command=SERVE)
    fill(_root(agent, "ret"))
    ids = [backup(agent.client, "ret")["id"] for _ in range(3)]
    listed = agent.client.get("/containers/ret/backups").json()
    assert [b["id"] for b in listed["backups"]] == ids[1:]
    gone = agent.client.get(f"/containers/ret/backups/{ids[0]}")
    assert gone.status_code == 404, gone.text
    archives = agent.config.storage.state_dir / "backups" / "ret"
    assert sorted(p.name for p in archives.iterdir()) == sorted(f"{i}.tar.gz" for i in ids[1:])


def test_tampered_archive_fails_the_restore_and_keeps_the_old_data(
    agent: Agent, test_image: str
) -> None:
    agent.install("tam", test_image, startup_command=SERVE)
    root = _root(agent, "tam")
    fill(root)
    info = backup(agent.client, "tam")
    change(root)
    changed = snapshot(root)
    archive = agent.config.storage.state_dir / "backups" / "tam" / f"{info['id']}.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))

    response = agent.client.post(f"/containers/tam/backups/{info['id']}/restore")
    assert response.status_code == 202, response.text
    done = wait_restore(agent.client, "tam", info["id"])
    assert done["last_restore"]["state"] == "failed"
    assert "checksum mismatch" in done["last_restore"]["error"]
    assert snapshot(root) == changed  # the old data, untouched
    assert not (root / ".lightd-restore").exists()
    assert agent.status("tam")["state"] == "running"
    failed = [e for e in agent.events if e.server == "tam" and e.kind == "restore_failed"]
    assert len(failed) == 1 and failed[0].error == "failed"
    assert failed[0].data is not None and failed[0].data.startswith("restore failed: checksum")


def test_refusals(agent: Agent, test_image: str) -> None:
    agent.install("ref", test_image, startup_command=SERVE)
    client = agent.client
    assert client.post("/containers/nope/backups").status_code == 404
    assert client.get("/containers/ref/backups/missing").status_code == 404
    bad = client.post("/containers/ref/backups", json={"ignore": "not-a-list"})
    assert bad.status_code == 422, bad.text
    extra = client.post("/containers/ref/backups", json={"exclude": ["x"]})
    assert extra.status_code == 422 and "exclude" in extra.text
    unauthorised = client.get("/containers/ref/backups", headers={"Authorization": "Bearer x"})
    assert unauthorised.status_code == 401
    assert client.get("/containers/ref/backups/..%2Fetc").status_code in (404, 422)
    assert client.get("/containers/ref/backups").json() == {"backups": [], "count": 0}


def test_busy_progress_and_a_stopped_server_stays_stopped(
    make_agent: AgentFactory, test_image: str
) -> None:
    agent = make_agent(backups={"progress_interval": "100ms"})
    agent.install("busy", test_image, startup_command=SERVE)
    root = _root(agent, "busy")
    fill(root)
    (root / "big.bin").write_bytes(os.urandom(48 * 1024 * 1024))  # a backup that takes a while
    first = agent.client.post("/containers/busy/backups")
    assert first.status_code == 202, first.text
    second = agent.client.post("/containers/busy/backups")
    assert second.status_code == 409 and "busy with a backup" in second.json()["detail"]
    info = wait_backup(agent.client, "busy", first.json()["id"])
    assert info["state"] == "completed", info
    took = (parse_timestamp(info["finished"]) - parse_timestamp(info["created"])).total_seconds()
    progress = [e for e in agent.events if e.server == "busy" and e.kind == "backup_progress"]
    assert 1 <= len(progress) <= took / 0.1 + 1, (len(progress), took)

    stopped = agent.client.post("/containers/busy/stop")
    assert stopped.status_code == 200, stopped.text
    (root / "big.bin").unlink()
    done = restore(agent.client, "busy", info["id"])
    assert done["last_restore"]["state"] == "completed"
    assert (root / "big.bin").stat().st_size == 48 * 1024 * 1024
    assert agent.status("busy")["state"] == "stopped"  # it was stopped: not started
