"""The S3 target against moto's standalone server (no real S3 is reachable here).

A backup bigger than several parts goes up as a multipart upload streamed from the archive
writer (part size 5 MiB, S3's smallest); restore brings the files back bit for bit. A backup
whose S3 endpoint is down fails, and the failure reaches a real loopback remote as the seed's
error update, ``"data": "backup failed: ..."``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import SERVE, AgentFactory
from tests.backups.conftest import Moto
from tests.backups.volume import backup, change, fill, restore, snapshot
from tests.harness.servers import free_port
from tests.harness.wait import wait_until
from tests.remote.recorder import RemoteServer, running_remote

pytestmark = pytest.mark.docker

PART = 5 * 1024 * 1024


def test_s3_round_trip_with_a_multipart_archive(
    make_agent: AgentFactory, test_image: str, moto: Moto
) -> None:
    agent = make_agent(backups=moto.section(part_size=PART))
    agent.install("s3web", test_image, startup_command=SERVE)
    root: Path = agent.config.storage.volumes_dir / "s3web"
    fill(root)
    (root / "world" / "big.bin").write_bytes(os.urandom(13 * 1024 * 1024))  # incompressible
    before = snapshot(root)

    info = backup(agent.client, "s3web")
    assert info["state"] == "completed", info
    assert info["target"] == "s3"
    head = moto.client().head_object(Bucket=moto.bucket, Key=f"test/s3web/{info['id']}.tar.gz")
    assert head["ContentLength"] == info["size"] > 2 * PART
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts: multipart

    change(root)
    done = restore(agent.client, "s3web", info["id"])
    assert done["last_restore"]["state"] == "completed", done
    assert snapshot(root) == before

    download = agent.client.get(f"/containers/s3web/backups/{info['id']}/download")
    assert download.status_code == 200 and len(download.content) == info["size"]

    deleted = agent.client.delete(f"/containers/s3web/backups/{info['id']}")
    assert deleted.json() == {"backup": info["id"], "server": "s3web", "deleted": True}
    listed = moto.client().list_objects_v2(Bucket=moto.bucket, Prefix="test/")
    assert listed.get("KeyCount", 0) == 0


@pytest.fixture
def remote() -> Iterator[RemoteServer]:
    yield from running_remote()


def test_failed_backup_reaches_the_remote_as_an_error_update(
    make_agent: AgentFactory, test_image: str, remote: RemoteServer
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    agent = make_agent(
        backups={
            "target": "s3",
            "s3": {
                "bucket": "lightd-down",
                "endpoint_url": down,
                "access_key_id": "k",
                "secret_access_key": "s",
            },
        },
        remote={
            "enabled": True,
            "url": remote.url,
            "token": "lightd_" + "ab" * 16,
            "timeout": "1s",
            "health_interval": "200ms",
            "retry_max_delay": "500ms",
        },
    )
    agent.install("s3down", test_image, startup_command=SERVE)
    fill(agent.config.storage.volumes_dir / "s3down")
    info = backup(agent.client, "s3down")
    assert info["state"] == "failed", info
    assert "uploading to s3 bucket lightd-down" in info["error"]

    def error_update() -> list[object]:
        return [
            r.body
            for r in remote.updates()
            if isinstance(r.body, dict) and r.body.get("error") == "failed"
        ]

    updates = wait_until(error_update, 30, what="the backup's error update at the remote")
    assert len(updates) == 1, updates
    body = updates[0]
    assert isinstance(body, dict)
    assert set(body) == {"event", "server", "error", "data"}
    assert body["event"] == "update" and body["server"] == "s3down"
    assert body["data"].startswith("backup failed: uploading to s3 bucket lightd-down")
