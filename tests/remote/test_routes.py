"""The ``/remote/...`` router on its own: config view, reload, pull/push, dead letters, auth."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from lightd_agent.config import load_config
from lightd_agent.events import LifecycleEvent
from lightd_agent.remote.routes import create_router, get_remote_sync
from lightd_shared.remote import RemoteSettings
from tests.remote.conftest import REMOTE_TOKEN, settings_for
from tests.remote.recorder import PREFIX, RemoteServer
from tests.remote.test_sync import eventually

pytestmark = pytest.mark.anyio

API_TOKEN = "lightd_0123456789abcdef0123456789abcdef"


def _auth(authorization: str | None = Header(default=None)) -> None:
    if authorization != f"Bearer {API_TOKEN}":
        raise HTTPException(401, "missing or wrong token")


_auth_dep = Depends(_auth)


@pytest.fixture
def config_file(tmp_path: Path, remote: RemoteServer) -> Path:
    path = tmp_path / "config.json"
    document = {"remote": settings_for(remote.url).model_dump(mode="json")}
    path.write_text(json.dumps(document))
    return path


def _read_remote(path: Path) -> RemoteSettings:
    return RemoteSettings.model_validate(json.loads(path.read_text())["remote"], strict=False)


@pytest.fixture
async def api(
    make_sync: Any, remote: RemoteServer, config_file: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    sync, bus = await make_sync(
        _read_remote(config_file),
        reload_settings=lambda: _read_remote(config_file),
        server_info=lambda: {"host": "127.0.0.1", "port": 8070},
    )
    app = FastAPI()
    app.dependency_overrides[get_remote_sync] = lambda: sync
    app.include_router(create_router(dependencies=[_auth_dep]))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://agent", headers=headers
    ) as client:
        yield client, (sync, bus)


async def test_every_route_needs_auth(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, _ = api
    for method, path in [
        ("GET", "/remote/config"),
        ("POST", "/remote/config/reload"),
        ("POST", "/remote/config/pull"),
        ("POST", "/remote/config/push"),
        ("GET", "/remote/status"),
        ("GET", "/remote/dead-letters"),
        ("POST", "/remote/dead-letters/1/replay"),
        ("DELETE", "/remote/dead-letters/1"),
    ]:
        response = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401, (method, path)


async def test_get_config_masks_the_token(
    api: tuple[httpx.AsyncClient, Any], remote: RemoteServer
) -> None:
    client, _ = api
    response = await client.get("/remote/config")
    assert response.status_code == 200
    view = response.json()
    assert view["remote"]["enabled"] is True
    assert view["remote"]["url"] == remote.url
    assert view["remote"]["token"] != REMOTE_TOKEN
    assert REMOTE_TOKEN not in response.text
    assert view["remote"]["token"].startswith("lightd_")
    assert view["server"] == {"host": "127.0.0.1", "port": 8070}
    assert view["version"]


async def test_reload_applies_new_settings_without_restart(
    api: tuple[httpx.AsyncClient, Any], remote: RemoteServer, config_file: Path
) -> None:
    client, (sync, bus) = api
    new_token = "lightd_ffffffffffffffffffffffffffffffff"
    document = json.loads(config_file.read_text())
    document["remote"]["token"] = new_token
    config_file.write_text(json.dumps(document))

    response = await client.post("/remote/config/reload")
    assert response.status_code == 200
    assert response.json() == {"message": "Configuration reloaded successfully"}
    bus.publish(LifecycleEvent(server="s1", kind="Started", state="installing"))
    await eventually(lambda: len(remote.updates()) == 1)
    assert remote.updates()[0].headers["authorization"] == f"Bearer {new_token}"

    # A broken file changes nothing and says what is wrong.
    document["remote"]["timeout"] = "soon"
    config_file.write_text(json.dumps(document))
    response = await client.post("/remote/config/reload")
    assert response.status_code == 422
    assert "timeout" in response.json()["detail"]
    assert sync.settings.token == new_token


async def test_pull_and_push_config(
    api: tuple[httpx.AsyncClient, Any], remote: RemoteServer
) -> None:
    client, (sync, _) = api
    response = await client.post("/remote/config/pull")
    assert response.status_code == 200
    assert response.json() == {"config": remote.behaviour.config, "applied": []}
    pulled = [r for r in remote.requests if r.path == f"{PREFIX}/config" and r.method == "GET"]
    assert pulled[0].headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
    saved = json.loads((sync.state_dir / "remote-config.json").read_text())
    assert saved == remote.behaviour.config

    response = await client.post("/remote/config/push")
    assert response.status_code == 200
    pushed = [r for r in remote.requests if r.path == f"{PREFIX}/config" and r.method == "POST"]
    assert len(pushed) == 1
    assert pushed[0].headers["content-type"] == "application/json"
    assert pushed[0].headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
    assert set(pushed[0].body) == {"containers", "settings"}

    # Without a server manager there is nothing to apply containers with.
    response = await client.post("/remote/config/pull?apply=true")
    assert response.status_code == 409

    remote.stop()
    response = await client.post("/remote/config/pull")
    assert response.status_code == 502
    assert "127.0.0.1" in response.json()["detail"]


async def test_dead_letters_list_replay_and_discard(
    api: tuple[httpx.AsyncClient, Any], remote: RemoteServer
) -> None:
    client, (sync, bus) = api
    remote.behaviour.status = 404
    bus.publish(LifecycleEvent(server="s1", kind="Started", state="installing"))
    bus.publish(LifecycleEvent(server="s2", kind="Started", state="installing"))
    await eventually(lambda: sync.snapshot().dead_letters == 2)

    listed = (await client.get("/remote/dead-letters")).json()["dead_letters"]
    # servers are delivered concurrently (order is per server), so either may be refused first;
    # the list is in the order they were refused (by id)
    assert sorted(d["server"] for d in listed) == ["s1", "s2"]
    assert [d["id"] for d in listed] == sorted(d["id"] for d in listed)
    listed.sort(key=lambda d: d["server"])
    assert listed[0]["status_code"] == 404
    assert listed[0]["body"] == {"event": "update", "server": "s1", "status": "installing"}

    status = (await client.get("/remote/status")).json()
    assert status["dead_letters"] == 2
    assert status["remote"] in {"ok", "unknown"}

    remote.behaviour.status = None
    response = await client.post(f"/remote/dead-letters/{listed[0]['id']}/replay")
    assert response.status_code == 200
    await eventually(lambda: len(remote.updates(200)) == 1)
    assert remote.updates(200)[0].headers["idempotency-key"] == listed[0]["idempotency_key"]

    response = await client.delete(f"/remote/dead-letters/{listed[1]['id']}")
    assert response.status_code == 200
    assert (await client.get("/remote/dead-letters")).json() == {"dead_letters": []}
    response = await client.post(f"/remote/dead-letters/{listed[1]['id']}/replay")
    assert response.status_code == 404
    assert "no dead letter" in response.json()["detail"]
    # ids past SQLite's integers (2^63) were a 500 (an overflow): now 422, or 404 when in range
    for huge in (2**63, 2**64, 10**30, -1, 0):
        for method, path in (
            ("POST", f"/remote/dead-letters/{huge}/replay"),
            ("DELETE", f"/remote/dead-letters/{huge}"),
        ):
            answer = await client.request(method, path)
            assert answer.status_code == 422, (method, path, answer.text)
    for method, path in (
        ("POST", f"/remote/dead-letters/{2**63 - 1}/replay"),
        ("DELETE", f"/remote/dead-letters/{2**63 - 1}"),
    ):
        assert (await client.request(method, path)).status_code == 404


async def test_pull_when_disabled_is_a_conflict(
    make_sync: Any, tmp_path: Path, remote: RemoteServer
) -> None:
    settings = settings_for(remote.url).model_copy(update={"enabled": False})
    sync, _ = await make_sync(settings, state_dir=tmp_path / "other")
    app = FastAPI()
    app.dependency_overrides[get_remote_sync] = lambda: sync
    app.include_router(create_router(dependencies=[_auth_dep]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://agent",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as client:
        response = await client.post("/remote/config/pull")
    assert response.status_code == 409
    assert "remote.enabled" in response.json()["detail"]


@pytest.mark.parametrize("field", ["health_interval", "timeout", "retry_max_delay"])
async def test_reload_refuses_a_zero_interval_and_keeps_the_running_settings(
    make_sync: Any, remote: RemoteServer, tmp_path: Path, field: str
) -> None:
    path = tmp_path / "config.json"
    document = {
        "authorization": {"token": API_TOKEN},
        "storage": {"base_path": str(tmp_path / "storage")},
        "remote": settings_for(remote.url).model_dump(mode="json"),
    }
    path.write_text(json.dumps(document))
    sync, _ = await make_sync(
        load_config(path).remote, reload_settings=lambda: load_config(path).remote
    )
    running = sync.settings
    document["remote"][field] = "0s"
    path.write_text(json.dumps(document))
    app = FastAPI()
    app.dependency_overrides[get_remote_sync] = lambda: sync
    app.include_router(create_router(dependencies=[_auth_dep]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://agent",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as client:
        response = await client.post("/remote/config/reload")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"remote.{field}: must be greater than 0s" in detail
    assert str(path) in detail
    assert sync.settings is running

    # The health loop still runs at its configured pace (200 ms), not in a busy loop: four
    # more checks take three intervals at least (the old bound: at most 5 in 0.5 s).
    def checks() -> int:
        return len([r for r in remote.requests if r.path == f"{PREFIX}/health"])

    before, began = checks(), time.monotonic()
    await eventually(lambda: checks() >= before + 4)
    assert time.monotonic() - began >= 0.3


async def test_a_password_in_the_remote_url_is_never_shown_or_logged(
    make_sync: Any, remote: RemoteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-url-password"
    url = remote.url.replace("http://", f"http://panel-user:{password}@")
    remote.behaviour.status = 503  # logs the update's URL
    sync, bus = await make_sync(
        settings_for(url, retry_max_delay="100ms"),
        state_dir=tmp_path / "masked",
        server_info=lambda: {"host": "127.0.0.1", "port": 8070},
    )
    app = FastAPI()
    app.dependency_overrides[get_remote_sync] = lambda: sync
    app.include_router(create_router(dependencies=[_auth_dep]))
    bus.publish(LifecycleEvent(server="s1", kind="Started", state="installing"))
    await eventually(lambda: len(remote.updates(503)) >= 2)
    remote.behaviour.status = None
    remote.stop()  # unreachable: the reason (with the URL) goes to the log and last_error
    await eventually(lambda: sync.snapshot().remote == "failed")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://agent",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as client:
        view = await client.get("/remote/config")
        status = await client.get("/remote/status")
        pulled = await client.post("/remote/config/pull")
    assert view.json()["remote"]["url"] == remote.url.replace("http://", "http://***@")
    assert "127.0.0.1" in (status.json()["last_error"] or "")
    assert pulled.status_code == 502
    for text in (view.text, status.text, pulled.text, caplog.text):
        assert password not in text
        assert "panel-user" not in text
    assert "***@127.0.0.1" in caplog.text  # the URL is still logged, masked
    # The password is still sent, as before (httpx turns URL user info into Basic auth).
    assert remote.requests[0].headers["authorization"].startswith("Basic ")
