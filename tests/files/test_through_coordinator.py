"""A server's files through the coordinator: a ``files.*`` command, the REST sugar, the streamed
relay of a large upload and download, and the ``containers files`` verbs.

Real coordinator (in process, on loopback), real ``lightd run`` agent, real engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

import httpx
import pytest

from lightd_agent.config import load_config
from lightd_agent.security import load_dispatch_key
from lightd_coordinator.cli import main
from lightd_coordinator.security import mint_token
from lightd_shared.dispatch import DISPATCH_SUBJECT
from lightd_shared.files import FILES_TRANSFER_SUBJECT
from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    API_TOKEN,
    STATIC,
    AgentProcess,
    operator,
    running_coordinator,
    start_agent,
    wait_until,
)

pytestmark = pytest.mark.docker


def cli(base: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--url", base, "--token", STATIC])
    return code, out.getvalue(), err.getvalue()


def test_files_through_the_coordinator(
    tmp_path: Path, test_image: str, docker_cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    agent: AgentProcess | None = None
    with running_coordinator() as base, operator(base) as client:
        try:
            agent = start_agent(tmp_path, base, "files", allow_exec=False)
            node = agent.node_id
            wait_until(lambda: client.get(f"/api/v1/nodes/{node}").status_code == 200)
            spec = {
                "id": "fs",
                "image": test_image,
                "startup_command": "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                "labels": docker_cleanup.labels,
            }
            created = client.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert created.json()["status"] == "success", created.text

            def running() -> bool:
                result = client.get(f"/api/v1/nodes/{node}/containers/fs").json()
                return result["status"] == "success" and result["data"]["state"] == "running"

            wait_until(running, 60, what="fs running")
            volume = load_config(agent.config).storage.volumes_dir / "fs"

            # a files command, as any command
            command = {
                "type": "container",
                "action": "files.write",
                "params": {"server": "fs", "path": "/cfg/motd.txt", "content": "hello"},
            }
            result = client.post(f"/api/v1/nodes/{node}/commands", json=command).json()
            assert result["status"] == "success", result
            assert result["data"]["done"] == {"success": True, "path": "/cfg/motd.txt", "size": 5}
            assert (volume / "cfg/motd.txt").read_text() == "hello"
            hostile = {
                "type": "container",
                "action": "files.read",
                "params": {"server": "fs", "path": "/../../etc/hostname"},
            }
            refused = client.post(f"/api/v1/nodes/{node}/commands", json=hostile).json()
            assert refused["status"] == "failed" and "'..'" in refused["output"], refused
            unknown = {"type": "container", "action": "files.nope", "params": {"server": "fs"}}
            bad = client.post(f"/api/v1/nodes/{node}/commands", json=unknown)
            assert bad.status_code == 422 and "files.list" in bad.text

            # the REST sugar
            sugar = f"/api/v1/nodes/{node}/containers/fs/files"
            listed = client.get(sugar, params={"path": "/cfg"}).json()
            assert listed["data"]["names"]["files"] == ["motd.txt"], listed
            content = client.get(f"{sugar}/content", params={"path": "/cfg/motd.txt"}).json()
            assert content["data"]["content"]["content"] == "hello"
            made = client.post(f"{sugar}/create-folder", json={"root": "/", "name": "w"}).json()
            assert made["status"] == "success", made
            moved = client.post(f"{sugar}/rename", json={"from": "/cfg", "to": "/w/cfg"}).json()
            assert moved["data"]["done"]["path"] == "/w/cfg", moved
            packed = client.post(
                f"{sugar}/compress", json={"sources": ["/w"], "output": "/w.zip", "format": "zip"}
            ).json()
            assert packed["status"] == "success", packed
            detailed = client.get(f"{sugar}/detailed").json()["data"]["entries"]
            assert [e["name"] for e in detailed["files"]] == ["w", "w.zip"]
            gone = client.post(f"{sugar}/delete", json={"root": "/", "files": ["w"]}).json()
            assert gone["status"] == "success"
            assert client.post(f"{sugar}/decompress", json={"file": "w.zip"}).json()["status"] == (
                "success"
            )
            assert (volume / "w/cfg/motd.txt").read_text() == "hello"
            found = client.get(f"{sugar}/search", params={"pattern": "motd"}).json()
            assert [e["path"] for e in found["data"]["search"]["files"]] == ["/w/cfg/motd.txt"]
            nul = client.get(sugar, params={"path": "/a\x00b"})
            assert nul.status_code == 422, nul.text

            # the streamed relay: larger than either side's server.max_body_size
            payload = os.urandom(3 * 1024 * 1024 + 5)
            up = client.put(f"{sugar}/upload", params={"path": "/big.bin"}, content=payload)
            assert up.status_code == 200, up.text
            assert up.json() == {"success": True, "path": "/big.bin", "size": len(payload)}
            down = client.get(f"{sugar}/download", params={"path": "/big.bin"})
            assert down.status_code == 200 and down.content == payload
            missing = client.get(f"{sugar}/download", params={"path": "/nope"})
            assert missing.status_code == 404 and "no such file" in missing.json()["detail"]
            assert httpx.get(f"{base}{sugar}/download?path=/big.bin").status_code == 401

            # the agent's side: only a transfer token for this server opens the stream
            key = load_dispatch_key(load_config(agent.config).storage.state_dir)
            direct = f"{agent.url}/volumes/fs/read"

            def bearer(subject: str, jti: str) -> dict[str, str]:
                token = mint_token(key, subject=subject, audience=node, expires_in=30, token_id=jti)
                return {"Authorization": f"Bearer {token}"}

            params = {"path": "/big.bin"}
            ok = httpx.get(
                direct, params=params, headers=bearer(FILES_TRANSFER_SUBJECT, "files:fs:1")
            )
            assert ok.status_code == 200 and ok.content == payload
            for headers in (
                bearer(DISPATCH_SUBJECT, "files:fs:2"),
                bearer(FILES_TRANSFER_SUBJECT, "files:other:3"),
            ):
                assert httpx.get(direct, params=params, headers=headers).status_code == 401
            listing = httpx.get(
                f"{agent.url}/volumes/fs/files",
                headers=bearer(FILES_TRANSFER_SUBJECT, "files:fs:4"),
            )
            assert listing.status_code == 401  # a transfer token opens the streams only
            api = httpx.get(
                f"{agent.url}/volumes/fs/files", headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
            assert api.status_code == 200

            # the verbs, with progress on stderr
            local = tmp_path / "local.bin"
            local.write_bytes(payload)
            code, out, err = cli(
                base, "containers", "files", "upload", node, "fs", str(local), "/v.bin"
            )
            assert code == 0 and "/v.bin" in out and f"{len(payload)} bytes in" in err, (out, err)
            back = tmp_path / "back.bin"
            code, out, err = cli(
                base, "containers", "files", "download", node, "fs", "/v.bin", str(back)
            )
            assert code == 0 and "100%" in err, err
            assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(payload).digest()
            code, out, _ = cli(base, "containers", "files", "ls", node, "fs", "/")
            assert code == 0 and out.split() == ["big.bin", "v.bin", "w", "w.zip"], out
            code, out, _ = cli(base, "containers", "files", "cat", node, "fs", "/w/cfg/motd.txt")
            assert code == 0 and out == "hello"
            code, _, err = cli(base, "containers", "files", "rm", node, "fs", "/nope")
            assert code == 1 and "no such file" in err
            code, out, _ = cli(base, "containers", "files", "ls", node, "fs", "-l", "--json")
            assert code == 0 and json.loads(out)["data"]["entries"]["total"] == 4
        finally:
            if agent is not None:
                agent.stop()
