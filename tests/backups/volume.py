"""Helpers: fill a server's volume, and describe it exactly (every file's hash and mode)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import httpx

from tests.harness.wait import wait_until

Snapshot = dict[str, tuple[Any, ...]]


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root``: type, content hash or link target, mode, owner."""
    found: Snapshot = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path), st.st_uid)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", mode, st.st_uid, st.st_gid)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = ("file", digest, mode, st.st_uid, st.st_gid, st.st_nlink)
    return found


def fill(root: Path, seed: str = "a") -> None:
    """A volume with files of several modes, nested dirs, a symlink, a hard link, binary data."""
    (root / "world" / "region").mkdir(parents=True, exist_ok=True)
    (root / "empty").mkdir(exist_ok=True)
    (root / "server.properties").write_text(f"motd={seed}\nmax-players=20\n")
    os.chmod(root / "server.properties", 0o640)
    (root / "world" / "level.dat").write_bytes(os.urandom(3000) + seed.encode())
    (root / "world" / "region" / "r.0.0.mca").write_bytes(bytes(range(256)) * 400)
    run = root / "start.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    os.chmod(run, 0o755)
    os.chmod(root / "world" / "region", 0o750)
    os.chown(root / "world" / "level.dat", 1000, 1000)
    link = root / "latest"
    if not link.is_symlink():
        link.symlink_to("world/level.dat")
    hard = root / "world" / "hard.dat"
    if not hard.exists():
        os.link(root / "server.properties", hard)


def change(root: Path) -> None:
    """Edit, delete and add files, so a restore has something to undo."""
    (root / "server.properties").write_text("motd=changed\n")
    os.chmod(root / "start.sh", 0o600)
    (root / "world" / "region" / "r.0.0.mca").unlink()
    (root / "new-file.txt").write_text("added after the backup")
    (root / "new-dir").mkdir()


def wait_backup(client: httpx.Client, server: str, backup: str, timeout: float = 60) -> Any:
    def done() -> Any:
        info = client.get(f"/containers/{server}/backups/{backup}").json()
        return info if info["state"] != "running" else None

    return wait_until(done, timeout, what=f"backup {backup} of {server} to end")


def wait_restore(client: httpx.Client, server: str, backup: str, timeout: float = 60) -> Any:
    def done() -> Any:
        info = client.get(f"/containers/{server}/backups/{backup}").json()
        restore = info.get("last_restore")
        return info if restore is not None and restore["state"] != "running" else None

    return wait_until(done, timeout, what=f"restore of {server} from {backup} to end")


def backup(client: httpx.Client, server: str, **body: Any) -> Any:
    response = client.post(f"/containers/{server}/backups", json=body or None)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["state"] == "running"
    assert set(accepted) == {"id", "state"}
    return wait_backup(client, server, accepted["id"])


def restore(client: httpx.Client, server: str, backup_id: str) -> Any:
    response = client.post(f"/containers/{server}/backups/{backup_id}/restore")
    assert response.status_code == 202, response.text
    assert response.json() == {"id": backup_id, "server": server, "state": "running"}
    return wait_restore(client, server, backup_id)
