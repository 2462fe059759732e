"""Helpers to run the real agent for remote-sync integration tests (in a thread or a process)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.harness.servers import free_port
from tests.harness.wait import wait_until

API_TOKEN = "lightd_0123456789abcdef0123456789abcdef"
REMOTE_TOKEN = "lightd_ad2f7fc49ed640429c450e14ed07c8d5"


def agent_config(
    base: Path, remote_url: str, *, port: int | None = None, **remote: Any
) -> dict[str, Any]:
    """A complete config.json for one test agent: own node id, own storage, short intervals."""
    return {
        "server": {"host": "127.0.0.1", "port": port or free_port()},
        "authorization": {"enabled": True, "token": API_TOKEN},
        "storage": {"base_path": str(base / "storage")},
        "node": {"id": f"rtest-{uuid.uuid4().hex[:8]}"},
        "docker": {"call_timeout": "20s", "install_timeout": "1m"},
        "remote": {
            "enabled": True,
            "url": remote_url,
            "token": REMOTE_TOKEN,
            "timeout": "1s",
            "health_interval": "200ms",
            "retry_max_delay": "500ms",
            **remote,
        },
    }


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def agent_client(base_url: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30
    )


def wait_state(client: httpx.Client, server: str, states: set[str], timeout: float = 60) -> str:
    """Poll ``GET /containers/{id}/status`` until the state is one of ``states``."""

    def state() -> str | None:
        response = client.get(f"/containers/{server}/status")
        found = response.json()["state"] if response.status_code == 200 else None
        return found if found in states else None

    reached: str = wait_until(state, timeout, what=f"server {server} in {states}")
    return reached
