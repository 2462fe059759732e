"""``remotes``: more remotes beside ``remote``, each with its own outbox and its own delivery.

One extra remote is down while the main one is up: the main one gets every update at once, the
down one's outbox keeps them (nothing lost, nothing blocking the other), and they arrive when it
comes back.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.config import load_config
from lightd_agent.remote.subsystem import extra_outbox_file
from lightd_agent.remote.sync import OUTBOX_FILE
from tests.harness.docker import Cleanup
from tests.harness.servers import serve
from tests.remote.agent import REMOTE_TOKEN, agent_client, agent_config, wait_state, write_config
from tests.remote.processes import wait_for
from tests.remote.recorder import RemoteServer, running_remote

pytestmark = pytest.mark.docker


def _statuses(remote: RemoteServer, server: str) -> list[str]:
    return [
        u.body.get("status") or u.body.get("error")
        for u in remote.updates()
        if u.body.get("server") == server
    ]


def test_each_remote_has_its_own_outbox(
    tmp_path: Path, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    with contextmanager(running_remote)() as other:
        other.stop()  # the extra remote is down from the start
        document = agent_config(tmp_path, remote.url)
        document["remotes"] = [
            {
                "name": "audit",
                "enabled": True,
                "url": other.url,
                "token": REMOTE_TOKEN,
                "timeout": "1s",
                "health_interval": "200ms",
                "retry_max_delay": "300ms",
            }
        ]
        path = write_config(tmp_path / "config.json", document)
        config = load_config(path)
        state_dir = config.storage.state_dir
        app = create_app(config, config_path=path)
        server = f"multi-{docker_cleanup.value}"
        with serve(app, port=config.server.port) as url, agent_client(url) as client:
            spec = {
                "id": server,
                "image": test_image,
                "startup_command": "sleep 300",
                "labels": docker_cleanup.labels,
            }
            assert client.post("/containers", json=spec).status_code == 202
            wait_state(client, server, {"running"})
            wait_for(lambda: _statuses(remote, server) == ["installing", "installing", "ready"])
            # the remote has the last update; its acknowledgement is committed a moment later
            wait_for(lambda: httpx.get(f"{url}/health").json()["remote"]["outbox_depth"] == 0)
            health = httpx.get(f"{url}/health").json()
            assert health["remotes"]["audit"]["remote"] == "failed"
            assert health["remotes"]["audit"]["outbox_depth"] == 3
            assert (state_dir / OUTBOX_FILE).is_file()
            assert (state_dir / extra_outbox_file("audit")).is_file()
            # the extra remote comes back: it gets the same updates, in order
            other.start()
            wait_for(lambda: _statuses(other, server) == ["installing", "installing", "ready"])
            wait_for(
                lambda: httpx.get(f"{url}/health").json()["remotes"]["audit"]["outbox_depth"] == 0
            )
        assert _statuses(remote, server) == ["installing", "installing", "ready"]
