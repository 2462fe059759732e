"""Backups through the coordinator: the REST sugar, the ``backup.*`` container commands, the
relayed download and the ``lightd-coordinator containers backup ...`` verbs, against a real
coordinator and a real ``lightd run`` agent on the real engine. A failed restore reaches
``/ws`` as a ``server_update`` carrying the seed's error update.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from tests.backups.volume import change, fill, snapshot
from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    STATIC,
    running_coordinator,
    start_agent,
    tail_events,
    wait_until,
)
from tests.integration.test_operator_cli import cli

pytestmark = pytest.mark.docker


def test_backups_through_the_coordinator_and_the_cli(
    tmp_path: Path, test_image: str, docker_cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with running_coordinator() as base, tail_events(base) as ws:
        agent = start_agent(tmp_path, base, "bk", allow_exec=False)
        node = agent.node_id
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {STATIC}"}, timeout=60)
        try:
            wait_until(lambda: node in cli(base, "nodes", "list").stdout, what="the node listed")
            server = f"bk-{docker_cleanup.value}"
            spec = {
                "id": server,
                "image": test_image,
                "startup_command": "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                "labels": docker_cleanup.labels,
            }
            made = api.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert made.json()["status"] == "success", made.text
            wait_until(
                lambda: "running" in cli(base, "containers", "status", node, server).stdout,
                what="the server running",
            )
            root = tmp_path / node / "volumes" / server
            fill(root)
            before = snapshot(root)

            made_backup = cli(
                base, "containers", "backup", "create", node, server, "--ignore", "*.tmp", "--wait"
            )
            assert made_backup.returncode == 0, made_backup.stderr
            assert " completed " in made_backup.stdout, made_backup.stdout
            listed = json.loads(
                cli(base, "containers", "backup", "list", node, server, "--json").stdout
            )
            assert listed["count"] == 1
            info = listed["backups"][0]
            backup_id = info["id"]
            assert info["state"] == "completed" and info["ignored"] == ["*.tmp"]
            shown = cli(base, "containers", "backup", "show", node, server, backup_id)
            assert f"sha256:   {info['checksum']}" in shown.stdout, shown.stdout

            saved = tmp_path / "saved.tar.gz"
            got = cli(
                base, "containers", "backup", "download", node, server, backup_id, "-o", str(saved)
            )
            assert got.returncode == 0, got.stderr
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == info["checksum"]

            change(root)
            restored = cli(
                base, "containers", "backup", "restore", node, server, backup_id, "--wait"
            )
            assert restored.returncode == 0, restored.stderr + restored.stdout
            assert snapshot(root) == before

            # a tampered archive: the restore fails, the data stays, /ws hears of it
            change(root)
            changed = snapshot(root)
            archive = tmp_path / node / "state" / "backups" / server / f"{backup_id}.tar.gz"
            data = bytearray(archive.read_bytes())
            data[len(data) // 2] ^= 0xFF
            archive.write_bytes(bytes(data))
            refused = cli(
                base, "containers", "backup", "restore", node, server, backup_id, "--wait"
            )
            assert refused.returncode == 1
            assert snapshot(root) == changed

            def restore_failed() -> list[dict[str, object]]:
                return [
                    e["data"]["update"]
                    for e in ws.of("server_update")
                    if e["data"]["server"] == server and "error" in e["data"]["update"]
                ]

            updates = wait_until(restore_failed, what="the failed restore on /ws")
            assert updates[0]["error"] == "failed"
            assert str(updates[0]["data"]).startswith("restore failed: checksum mismatch")

            missing = api.get(f"/api/v1/nodes/{node}/containers/{server}/backups/nope")
            assert missing.status_code == 200 and missing.json()["status"] == "failed"
            assert "has no backup 'nope'" in missing.json()["output"]
            no_download = api.get(f"/api/v1/nodes/{node}/containers/{server}/backups/nope/download")
            assert no_download.status_code == 404, no_download.text

            deleted = cli(base, "containers", "backup", "delete", node, server, backup_id)
            assert deleted.returncode == 0 and "deleted" in deleted.stdout
            empty = json.loads(
                cli(base, "containers", "backup", "list", node, server, "--json").stdout
            )
            assert empty == {"backups": [], "count": 0}
        finally:
            api.close()
            agent.stop()
