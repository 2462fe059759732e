"""A remote that is down, answers 500 or 401, or hangs, while the agent is SIGKILLed mid-install.

One scenario per fault, with the real ``lightd run`` process and the real engine: a first
server is installed and acknowledged with the remote well; then the fault starts, a second
server installs and runs, a third one's install script is still running when the agent is
killed with ``kill -9``. The agent comes back on the same state (the cut-off install is marked
``failed``, its install container removed), the remote recovers, and then every update
reaches it once and in order per server, and no container is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.faults.harness import (
    check_deliveries,
    check_no_orphans,
    client_of,
    remote_health,
    spec,
    start_agent,
    statuses,
    wait_drained,
)
from tests.harness.docker import Cleanup
from tests.harness.wait import wait_until
from tests.remote.agent import wait_state
from tests.remote.recorder import RemoteServer

pytestmark = pytest.mark.docker


def _down(remote: RemoteServer) -> Callable[[], None]:
    remote.stop()
    return remote.start


def _answers(status: int) -> Callable[[RemoteServer], Callable[[], None]]:
    def fault(remote: RemoteServer) -> Callable[[], None]:
        remote.behaviour.status = status

        def heal() -> None:
            remote.behaviour.status = None

        return heal

    return fault


def _hangs(remote: RemoteServer) -> Callable[[], None]:
    remote.behaviour.delay = 3.0  # three times the agent's remote.timeout

    def heal() -> None:
        remote.behaviour.delay = 0.0

    return heal


FAULTS: dict[str, Callable[[RemoteServer], Callable[[], None]]] = {
    "down": _down,
    "500": _answers(500),
    "401": _answers(401),
    "hanging": _hangs,
}


def _install_running(docker_client: docker.DockerClient, node_id: str, server: str) -> bool:
    filters = {
        "label": [f"lightd.node={node_id}", f"lightd.server={server}", "lightd.role=install"]
    }
    return any(c.status == "running" for c in docker_client.containers.list(filters=filters))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_remote_fault_and_agent_sigkill_mid_install_lose_nothing(
    fault: str,
    tmp_path: Path,
    remote: RemoteServer,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
) -> None:
    agent = start_agent(tmp_path, remote)
    client = client_of(agent)
    try:
        labels = docker_cleanup.labels
        assert client.post("/containers", json=spec("early", test_image, labels)).status_code == 202
        wait_state(client, "early", {"running"})
        wait_drained(client)
        acked = {u.headers["idempotency-key"] for u in remote.updates(200)}

        heal = FAULTS[fault](remote)
        steady = spec("steady", test_image, labels, install="echo installed")
        assert client.post("/containers", json=steady).status_code == 202
        wait_state(client, "steady", {"running"})
        cut = spec("cut", test_image, labels, install="sleep 120")
        assert client.post("/containers", json=cut).status_code == 202
        wait_until(
            lambda: _install_running(docker_client, agent.node_id, "cut"),
            30,
            what="the install container running",
        )
        queued = remote_health(client)["outbox_depth"]
        assert queued >= 4  # steady's updates at least: none acknowledged
        agent.kill()
        assert _install_running(docker_client, agent.node_id, "cut")  # nobody cleaned up
        seen_before_restart = len(remote.updates(None))

        agent.start()
        assert remote_health(client)["outbox_depth"] >= queued  # the kill lost nothing
        assert wait_state(client, "cut", {"failed"}) == "failed"
        assert wait_state(client, "steady", {"running"}) == "running"
        assert not _install_running(docker_client, agent.node_id, "cut")
        heal()

        check_deliveries(client, remote)
        resent = remote.updates(None)[seen_before_restart:]
        assert not acked & {u.headers["idempotency-key"] for u in resent}  # never sent again
        got = statuses(remote)
        assert got["early"] == ["installing", "installing", "ready", "running"], got
        assert got["steady"] == ["installing", "installing", "ready", "running"], got
        assert got["cut"][0] == "installing" and got["cut"][-1] == "error:failed", got
        assert set(got["cut"][:-1]) == {"installing"}, got
        check_no_orphans(client, docker_client, agent.node_id)
    finally:
        client.close()
        agent.stop()
