"""A captured ``POST /commands`` replayed after the agent restarted does not run again.

The ledger of seen command ids (the tokens' ``jti``) used to live in memory only, so the same
signed request sent again within the token's life, after a restart, ran a second time.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.command_ledger import TOKEN_SKEW, SeenCommands
from lightd_agent.config import load_config
from lightd_agent.security import load_dispatch_key
from lightd_coordinator.security import NodeKeySigner
from tests.agent.conftest import TOKEN, write_config
from tests.harness.servers import free_port, serve

pytestmark = pytest.mark.docker


def test_a_replayed_command_does_not_run_again_after_a_restart(tmp_path: Path) -> None:
    node = f"test-{uuid.uuid4().hex[:10]}"
    marker = tmp_path / "ran"
    path = write_config(
        tmp_path,
        node,
        coordinator={
            "enabled": True,
            "url": f"http://127.0.0.1:{free_port()}",  # nobody there: enrolment keeps retrying
            "token": TOKEN,
            "advertise_address": "127.0.0.1",
        },
        commands={"allow_exec": True},
    )
    config = load_config(path)
    key = load_dispatch_key(config.storage.state_dir)
    command_id = f"cmd_{int(time.time())}_{node}"
    body = {
        "id": command_id,
        "node_id": node,
        "type": "exec",
        "action": f"echo once >> {marker}",
    }
    headers = {"Authorization": NodeKeySigner(expires_in=60).authorization(node, command_id, key)}

    def send(url: str) -> dict[str, object]:
        response = httpx.post(f"{url}/commands", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        result: dict[str, object] = response.json()
        return result

    with serve(create_app(config, config_path=path)) as url:
        first = send(url)
        assert first["status"] == "success"
        assert send(url) == first  # a repeat in the same process: the first result
    assert marker.read_text() == "once\n"

    # a new process on the same state directory, while the token is still valid
    with serve(create_app(load_config(path), config_path=path)) as url:
        replayed = send(url)
    assert replayed == first
    assert marker.read_text() == "once\n"


def test_seen_ids_are_kept_for_the_tokens_life_plus_skew(tmp_path: Path) -> None:
    now = [1_000_000.0]
    seen = SeenCommands(tmp_path / "commands.db", clock=lambda: now[0])
    seen.start("cmd_a", token_expires=now[0] + 60)
    assert seen.lookup("cmd_a") == (True, None)  # taken, no result yet (still running)
    seen.close()
    reopened = SeenCommands(tmp_path / "commands.db", clock=lambda: now[0])
    now[0] += 60 + TOKEN_SKEW  # the token's exp plus the skew: still kept
    assert reopened.lookup("cmd_a") == (True, None)
    now[0] += 1  # past it: no token for this id can pass any more, so it is forgotten
    assert reopened.lookup("cmd_a") == (False, None)
    reopened.start("cmd_b", token_expires=now[0] + 60)  # writing drops the expired rows
    rows = reopened._db.execute("SELECT id FROM seen").fetchall()
    assert rows == [("cmd_b",)]
    reopened.close()
