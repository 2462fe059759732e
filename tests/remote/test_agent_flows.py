"""The real agent on the real Docker engine, syncing to the recording remote on loopback.

Install, reinstall, a failing install script and a missing image: the remote receives exactly
the seed's bodies at ``{url}/update`` with the seed's headers, in order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.cli import main as cli_main
from lightd_agent.config import load_config
from tests.harness.docker import Cleanup
from tests.harness.servers import serve
from tests.remote.agent import (
    API_TOKEN,
    REMOTE_TOKEN,
    agent_client,
    agent_config,
    wait_state,
    write_config,
)
from tests.remote.processes import wait_for
from tests.remote.recorder import PREFIX, RemoteServer

pytestmark = pytest.mark.docker


@pytest.fixture
def config_path(tmp_path: Path, remote: RemoteServer) -> Path:
    return write_config(tmp_path / "config.json", agent_config(tmp_path, remote.url))


@pytest.fixture
def agent(config_path: Path) -> Iterator[httpx.Client]:
    config = load_config(config_path)
    app = create_app(config, config_path=config_path)
    with serve(app, port=config.server.port) as url, agent_client(url) as client:
        yield client


def _spec(server: str, image: str, cleanup: Cleanup, **fields: Any) -> dict[str, Any]:
    return {
        "id": server,
        "image": image,
        "startup_command": "sleep 300",
        "labels": cleanup.labels,
        **fields,
    }


def _check_headers(updates: list[Any]) -> None:
    for number, update in enumerate(updates, start=1):
        assert update.method == "POST"
        assert update.path == f"{PREFIX}/update"
        assert update.headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
        assert update.headers["content-type"] == "application/json"
        assert update.headers["x-lightd-sequence"] == str(number)
    assert len({u.headers["idempotency-key"] for u in updates}) == len(updates)


def test_install_then_reinstall_sends_the_seed_updates(
    agent: httpx.Client, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    spec = _spec(
        "web-1",
        test_image,
        docker_cleanup,
        install_script="echo installed > /data/x",
        # Stops at once on SIGTERM, so the reinstall does not wait for the kill timeout.
        startup_command="trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done",
    )
    assert agent.post("/containers", json=spec).status_code == 202
    wait_state(agent, "web-1", {"running"})
    wait_for(lambda: len(remote.updates()) == 3)
    installing = {"event": "update", "server": "web-1", "status": "installing"}
    ready = {"event": "update", "server": "web-1", "status": "ready"}
    assert [u.body for u in remote.updates()] == [installing, installing, ready]

    assert agent.post("/containers/web-1/reinstall").status_code == 202
    wait_for(lambda: len(remote.updates()) == 6)
    wait_state(agent, "web-1", {"running"})
    updates = remote.updates()
    assert [u.body for u in updates[3:]] == [installing, installing, ready]
    _check_headers(updates)

    # the remote has the last update; its acknowledgement is committed a moment later
    wait_for(lambda: agent.get("/health").json()["remote"]["outbox_depth"] == 0)
    health = agent.get("/health").json()
    assert health["remote"]["remote"] == "ok"
    assert health["remote"]["dead_letters"] == 0


def test_failing_install_script_sends_the_error_body(
    agent: httpx.Client, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    script = "echo fetching files; echo disk quota exceeded >&2; exit 3"
    spec = _spec("broken-1", test_image, docker_cleanup, install_script=script)
    assert agent.post("/containers", json=spec).status_code == 202
    wait_state(agent, "broken-1", {"failed"})
    wait_for(lambda: len(remote.updates()) == 2)
    first, error = remote.updates()
    assert first.body == {"event": "update", "server": "broken-1", "status": "installing"}
    assert set(error.body) == {"event", "server", "error", "data"}
    assert error.body["event"] == "update"
    assert error.body["server"] == "broken-1"
    assert error.body["error"] == "failed"
    assert "code 3" in error.body["data"]
    assert "disk quota exceeded" in error.body["data"]
    _check_headers([first, error])


def test_missing_image_sends_the_error_body(
    agent: httpx.Client, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    spec = _spec("ghost-1", "lightd-test-does-not-exist:1.0", docker_cleanup)
    assert agent.post("/containers", json=spec).status_code == 202
    wait_state(agent, "ghost-1", {"failed"})
    wait_for(lambda: len(remote.updates()) == 2)
    first, error = remote.updates()
    assert first.body == {"event": "update", "server": "ghost-1", "status": "installing"}
    assert error.body["error"] == "failed"
    assert "not found" in error.body["data"].lower()
    assert "lightd-test-does-not-exist" in error.body["data"]


def test_remote_api_on_the_agent_needs_auth_and_masks_the_token(
    agent: httpx.Client, remote: RemoteServer
) -> None:
    response = httpx.get(str(agent.base_url) + "/remote/config")
    assert response.status_code == 401
    view = agent.get("/remote/config").json()
    assert view["remote"]["url"] == remote.url
    assert REMOTE_TOKEN not in str(view)
    assert API_TOKEN not in str(view)


def test_config_pull_apply_and_push(
    agent: httpx.Client, remote: RemoteServer, test_image: str, docker_cleanup: Cleanup
) -> None:
    pulled = _spec("pulled-1", test_image, docker_cleanup)
    remote.behaviour.config = {
        "containers": [
            pulled,
            {"id": "bad-1", "image": test_image, "ports": [{"container": "eighty"}]},
            {**pulled, "image": "something-else:1"},
        ],
        "settings": {"note": "from the panel"},
    }
    # A plain pull changes nothing on the agent.
    plain = agent.post("/remote/config/pull").json()
    assert plain == {"config": remote.behaviour.config, "applied": []}
    assert agent.get("/containers/pulled-1/status").status_code == 404

    result = agent.post("/remote/config/pull?apply=true").json()
    outcomes = [(a["id"], a["outcome"]) for a in result["applied"]]
    assert outcomes == [("pulled-1", "created"), ("bad-1", "invalid"), ("pulled-1", "exists")]
    assert "ports" in result["applied"][1]["detail"]
    wait_state(agent, "pulled-1", {"running"})
    wait_for(lambda: len(remote.updates()) == 3)
    assert {u.body["server"] for u in remote.updates()} == {"pulled-1"}

    assert agent.post("/remote/config/push").status_code == 200
    [pushed] = [r for r in remote.requests if r.method == "POST" and r.path == f"{PREFIX}/config"]
    assert pushed.headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
    assert pushed.headers["content-type"] == "application/json"
    assert [c["id"] for c in pushed.body["containers"]] == ["pulled-1"]
    assert pushed.body["containers"][0]["image"] == test_image
    assert pushed.body["settings"]["remote"]["url"] == remote.url
    assert REMOTE_TOKEN not in str(pushed.body)
    assert API_TOKEN not in str(pushed.body)


def test_reload_applies_the_file_without_restart(
    agent: httpx.Client,
    remote: RemoteServer,
    config_path: Path,
    test_image: str,
    docker_cleanup: Cleanup,
) -> None:
    second = RemoteServer()
    second.start()
    try:
        document = load_config(config_path).model_dump(mode="json", by_alias=True)
        document["remote"]["url"] = second.url
        write_config(config_path, document)
        response = agent.post("/remote/config/reload")
        assert response.json() == {"message": "Configuration reloaded successfully"}
        assert agent.get("/remote/config").json()["remote"]["url"] == second.url

        spec = _spec("moved-1", "lightd-test-does-not-exist:1.0", docker_cleanup)
        assert agent.post("/containers", json=spec).status_code == 202
        wait_for(lambda: len(second.updates()) == 2)
        assert not [u for u in remote.updates() if u.body["server"] == "moved-1"]
    finally:
        second.stop()


def test_full_outbox_refuses_new_lifecycle_actions_with_503(
    tmp_path: Path,
    remote: RemoteServer,
    test_image: str,
    docker_cleanup: Cleanup,
    capsys: pytest.CaptureFixture[str],
) -> None:
    remote.stop()
    path = write_config(
        tmp_path / "config.json", agent_config(tmp_path, remote.url, outbox_limit=2)
    )
    app = create_app(load_config(path), config_path=path)
    with serve(app) as url, agent_client(url) as agent:
        spec = _spec("missing-1", "lightd-test-does-not-exist:1.0", docker_cleanup)
        assert agent.post("/containers", json=spec).status_code == 202
        wait_state(agent, "missing-1", {"failed"})
        refused = agent.post("/containers", json={**spec, "id": "missing-2"})
        assert refused.status_code == 503
        assert "outbox is full" in refused.json()["detail"]
        whole = agent.get("/health").json()
        health = whole["remote"]
        assert health["outbox_full"] is True
        assert health["outbox_depth"] == 2
        # Refusing lifecycle actions is not "ok": /health and lightd status say degraded, and why.
        assert whole["status"] == "degraded"
        assert "outbox is full" in health["degraded_reason"]
        assert cli_main(["status", "--url", url]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^status\s+degraded$", out, re.M)
        assert re.search(r"^remote\.degraded_reason\s+the outbox is full", out, re.M)

        remote.start()
        wait_for(lambda: agent.get("/health").json()["remote"]["outbox_depth"] == 0)
        whole = agent.get("/health").json()
        assert whole["status"] == "ok"
        assert whole["remote"]["degraded_reason"] is None
        assert agent.post("/containers", json={**spec, "id": "missing-2"}).status_code == 202


def test_cli_lists_and_replays_dead_letters_and_shows_status(
    agent: httpx.Client,
    remote: RemoteServer,
    config_path: Path,
    docker_cleanup: Cleanup,
    capsys: pytest.CaptureFixture[str],
) -> None:
    remote.behaviour.status = 404
    spec = _spec("lost-1", "lightd-test-does-not-exist:1.0", docker_cleanup)
    assert agent.post("/containers", json=spec).status_code == 202
    wait_for(lambda: agent.get("/remote/status").json()["dead_letters"] == 2)

    assert cli_main(["remote", "dead-letters", "list", "-c", str(config_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["ID", "SERVER", "SEQ", "UPDATE"]
    assert [line.split()[1:4] for line in table[1:]] == [
        ["lost-1", "1", "installing"],
        ["lost-1", "2", "error:"],
    ]
    first_id = table[1].split()[0]

    assert cli_main(["remote", "status", "-c", str(config_path)]) == 0
    status = capsys.readouterr().out
    assert "dead letters" in status
    assert "2" in status.split("dead letters")[1]

    remote.behaviour.status = None
    assert cli_main(["remote", "dead-letters", "replay", first_id, "-c", str(config_path)]) == 0
    assert "queued" in capsys.readouterr().out
    wait_for(lambda: len(remote.updates(200)) == 1)
    assert remote.updates(200)[0].body["status"] == "installing"

    assert cli_main(["remote", "dead-letters", "replay", "999", "-c", str(config_path)]) == 1
    assert "no dead letter 999" in capsys.readouterr().err

    assert cli_main(["status", "-c", str(config_path)]) == 0
    assert "remote.outbox_depth" in capsys.readouterr().out

    assert cli_main(["remote", "config", "pull", "-c", str(config_path)]) == 0
    assert "1 containers" in capsys.readouterr().out


def test_a_password_in_the_remote_url_never_reaches_answers_logs_or_status(
    tmp_path: Path,
    remote: RemoteServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-url-password"
    url = remote.url.replace("http://", f"http://panel-user:{password}@")
    path = write_config(tmp_path / "config.json", agent_config(tmp_path, url))
    config = load_config(path)
    app = create_app(config, config_path=path)
    with serve(app, port=config.server.port) as agent_url, agent_client(agent_url) as agent:
        wait_for(lambda: agent.get("/health").json()["remote"]["remote"] == "ok")
        pushed = agent.post("/remote/config/push")
        assert pushed.status_code == 200
        remote.stop()
        wait_for(lambda: agent.get("/health").json()["remote"]["remote"] == "failed")
        answers = [
            pushed.text,
            agent.get("/health").text,
            agent.get("/remote/config").text,
            agent.get("/remote/status").text,
        ]
        assert cli_main(["status", "--url", agent_url]) == 0
        assert cli_main(["remote", "status", "-c", str(path)]) == 0
        assert cli_main(["remote", "config", "show", "-c", str(path)]) == 0
        out = capsys.readouterr().out
    assert "127.0.0.1" in out  # the failure reason still says where
    [sent] = [r for r in remote.requests if r.path == f"{PREFIX}/config"]
    assert sent.body["settings"]["remote"]["url"].startswith("http://***@127.0.0.1")
    assert '"url":"http://***@127.0.0.1' in answers[2].replace(" ", "")
    for text in [*answers, out, caplog.text]:
        assert password not in text
