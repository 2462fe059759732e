"""The issue's hardest case with the real daemon: ``lightd run -c config.json`` as a process.

Remote down while N servers install; the agent killed with SIGKILL; restarted; the remote back:
every update arrives, in order per server, and no acknowledged update is ever sent again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness.docker import Cleanup
from tests.harness.wait import wait_until
from tests.remote.agent import agent_client, agent_config, wait_state, write_config
from tests.remote.processes import sigkill, wait_for
from tests.remote.recorder import RemoteServer

pytestmark = pytest.mark.docker

LIGHTD = str(Path(sys.executable).with_name("lightd"))


def _run_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([LIGHTD, "run", "-c", str(config)], stdout=sink, stderr=sink)


def _wait_up(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"agent exited with {process.returncode}:\n{log.read_text()}")
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 30, what="the agent answering /health")


def _outbox_depth(client: httpx.Client) -> int:
    return int(client.get("/health").json()["remote"]["outbox_depth"])


def test_remote_down_agent_sigkilled_restarted_remote_back_loses_nothing(
    tmp_path: Path, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    document = agent_config(tmp_path, remote.url, retry_max_delay="5s")
    config = write_config(tmp_path / "config.json", document)
    log = tmp_path / "agent.log"
    base_url = f"http://127.0.0.1:{document['server']['port']}"
    servers = [f"game-{n}" for n in range(3)]

    def spec(server: str) -> dict[str, object]:
        return {
            "id": server,
            "image": test_image,
            "startup_command": "sleep 300",
            "install_script": "echo ok",
            "labels": docker_cleanup.labels,
        }

    agent = _run_agent(config, log)
    client = agent_client(base_url)
    try:
        _wait_up(client, agent, log)
        # Remote up: the first server installs and its updates are acknowledged.
        assert client.post("/containers", json=spec("early-1")).status_code == 202
        wait_state(client, "early-1", {"running"})
        wait_for(lambda: _outbox_depth(client) == 0)
        acked = {u.headers["idempotency-key"] for u in remote.updates()}
        assert len(acked) == 3

        # Remote down while N servers install.
        remote.stop()
        for server in servers:
            assert client.post("/containers", json=spec(server)).status_code == 202
        for server in servers:
            wait_state(client, server, {"running"})
        assert _outbox_depth(client) == 3 * len(servers)
    finally:
        sigkill(agent)
        client.close()

    # Restart the agent while the remote is still away, then bring the remote back.
    remote.clear()
    agent = _run_agent(config, log)
    client = agent_client(base_url)
    try:
        _wait_up(client, agent, log)
        assert _outbox_depth(client) >= 3 * len(servers)
        remote.start()
        wait_for(lambda: _outbox_depth(client) == 0, timeout=30)
        for server in servers:
            assert wait_state(client, server, {"running"}) == "running"
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        client.close()

    everything = remote.updates(None)
    assert not acked & {u.headers["idempotency-key"] for u in everything}
    assert [u for u in everything if u.body["server"] == "early-1"] == []
    for server in servers:
        mine = [u for u in remote.updates() if u.body["server"] == server]
        assert [u.body["status"] for u in mine] == ["installing", "installing", "ready"]
        assert [u.headers["x-lightd-sequence"] for u in mine] == ["1", "2", "3"]
        assert len({u.headers["idempotency-key"] for u in mine}) == 3
