"""The node proof goes to the coordinator's remote endpoint, and never to a third-party remote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jose import jwt

from lightd_agent import security
from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig, load_config
from lightd_agent.remote.proof import coordinator_proof
from lightd_agent.security import ALGORITHM, NodeProofSigner, new_dispatch_key
from lightd_shared.dispatch import NODE_PROOF_AUDIENCE, NODE_PROOF_ISSUER
from tests.harness.servers import serve
from tests.remote.agent import REMOTE_TOKEN, agent_client, agent_config, write_config
from tests.remote.conftest import settings_for
from tests.remote.processes import wait_for
from tests.remote.recorder import PREFIX, RemoteServer, running_remote
from tests.remote.test_sync import event, eventually

API_TOKEN = "lightd_0123456789abcdef0123456789abcdef"
HEADER = "x-lightd-node-proof"


def _config(coordinator_url: str, *, enabled: bool = True, node: str = "host-7") -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "authorization": {"token": API_TOKEN},
            "node": {"id": node},
            "coordinator": {"enabled": enabled, "url": coordinator_url},
        }
    )


@pytest.fixture
def third_party() -> Iterator[RemoteServer]:
    yield from running_remote()


def _root(remote: RemoteServer) -> str:
    return f"http://127.0.0.1:{remote.port}"


@pytest.mark.anyio
async def test_the_proof_reaches_the_coordinator_and_no_third_party(
    remote: RemoteServer, third_party: RemoteServer, make_sync: Any, tmp_path: Path
) -> None:
    key = new_dispatch_key()
    proof = coordinator_proof(_config(_root(remote)), key)
    assert proof is not None
    _, coordinator_bus = await make_sync(settings_for(remote.url), coordinator_proof=proof)
    _, panel_bus = await make_sync(
        settings_for(third_party.url), coordinator_proof=proof, state_dir=tmp_path / "panel"
    )
    for bus in (coordinator_bus, panel_bus):
        bus.publish(event("s1", "Started"))
        bus.publish(event("s1", "Ready"))
    await eventually(lambda: len(remote.updates()) == 2 and len(third_party.updates()) == 2)
    await eventually(
        lambda: (
            any(r.path == f"{PREFIX}/health" for r in remote.requests)
            and any(r.path == f"{PREFIX}/health" for r in third_party.requests)
        )
    )

    for request in remote.requests:
        claims = jwt.decode(
            request.headers[HEADER], key, algorithms=[ALGORITHM], audience=NODE_PROOF_AUDIENCE
        )
        assert claims["sub"] == "host-7"
        assert claims["iss"] == NODE_PROOF_ISSUER
        assert claims["exp"] - claims["iat"] == security.NODE_PROOF_LIFETIME
    assert third_party.requests
    for request in third_party.requests:
        assert HEADER not in request.headers, request.path


def test_only_urls_under_the_enabled_coordinator_get_the_proof() -> None:
    key = new_dispatch_key()
    proof = coordinator_proof(_config("http://coordinator:3001"), key)
    assert proof is not None
    assert proof.for_url("http://coordinator:3001/api/v1/remote/host-7") is proof.sign
    assert proof.for_url("http://coordinator:3001") is proof.sign
    assert proof.for_url("http://coordinator:30011/api/v1/remote/host-7") is None
    assert proof.for_url("http://coordinator:3001.evil.example/api") is None
    assert proof.for_url("https://coordinator:3001/api/v1/remote/host-7") is None
    assert proof.for_url("https://panel.example/api") is None
    assert proof.for_url(None) is None
    # A coordinator url with a path: only what is under that path.
    under = coordinator_proof(_config("http://gateway/lightd/"), key)
    assert under is not None
    assert under.for_url("http://gateway/lightd/api/v1/remote/host-7") is under.sign
    assert under.for_url("http://gateway/lightdx/api") is None
    assert under.for_url("http://gateway/other/api") is None
    # No coordinator, no proof to anyone.
    assert coordinator_proof(_config("http://coordinator:3001", enabled=False), key) is None
    assert coordinator_proof(_config("http://coordinator:3001"), None) is None


def test_a_proof_is_reused_until_two_thirds_of_its_life(monkeypatch: pytest.MonkeyPatch) -> None:
    signed: list[str] = []
    real = security.node_proof

    def counting(key: str, node_id: str, *, expires_in: int) -> str:
        token = real(key, node_id, expires_in=expires_in)
        signed.append(token)
        return token

    clock = {"now": 1000.0}
    monkeypatch.setattr(security, "node_proof", counting)
    signer = NodeProofSigner(new_dispatch_key(), "host-7", lifetime=300, clock=lambda: clock["now"])
    first = signer()
    clock["now"] += 199
    assert signer() == first
    assert len(signed) == 1
    clock["now"] += 2  # past 200 s, two thirds of 300 s
    signer()
    assert len(signed) == 2


@pytest.mark.docker
def test_the_running_agent_proves_itself_to_its_coordinator_only(
    tmp_path: Path, remote: RemoteServer, third_party: RemoteServer
) -> None:
    # The recording server stands in for the coordinator (its root is coordinator.url; the
    # remote endpoint is under it); the third party is a `remotes` entry.
    document = agent_config(tmp_path, remote.url)
    document["coordinator"] = {
        "enabled": True,
        "url": _root(remote),
        "advertise_address": "127.0.0.1",
        "heartbeat_interval": "1s",
    }
    document["remotes"] = [
        {
            "name": "panel",
            "enabled": True,
            "url": third_party.url,
            "token": REMOTE_TOKEN,
            "health_interval": "200ms",
        }
    ]
    path = write_config(tmp_path / "config.json", document)
    config = load_config(path)
    app = create_app(config, config_path=path)
    with serve(app, port=config.server.port) as url, agent_client(url):
        wait_for(lambda: any(r.path == f"{PREFIX}/health" for r in remote.requests))
        wait_for(lambda: any(r.path == f"{PREFIX}/health" for r in third_party.requests))
        key = app.state.agent.dispatch_key
    [health, *_] = [r for r in remote.requests if r.path == f"{PREFIX}/health"]
    claims = jwt.decode(
        health.headers[HEADER], key, algorithms=[ALGORITHM], audience=NODE_PROOF_AUDIENCE
    )
    assert claims["sub"] == config.node.id
    assert third_party.requests
    assert all(HEADER not in r.headers for r in third_party.requests)
