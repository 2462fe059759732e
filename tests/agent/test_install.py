"""Install and reinstall on the real engine: seed-ordered events, errors an operator reads."""

from __future__ import annotations

import docker
import pytest

from tests.agent.conftest import SERVE, Agent
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker


def test_install_without_script_runs_the_server(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    status = agent.install("plain", test_image, startup_command="echo hello; sleep 600")
    assert status["state"] == "running"
    assert status["error"] is None
    assert status["started_at"] is not None
    assert agent.wait_kinds("plain", ["Started", "CreatingContainer", "Ready", "Running"])
    ready = next(e for e in agent.events if e.kind == "Ready")
    assert ready.state == "ready"

    containers = agent.owned(docker_client)
    assert len(containers) == 1
    labels = containers[0].labels
    assert labels["lightd.node"] == agent.node
    assert labels["lightd.server"] == "plain"
    assert containers[0].status == "running"

    listing = agent.client.get("/containers").json()
    assert listing["count"] == 1
    assert listing["containers"][0]["id"] == "plain"
    assert listing["containers"][0]["spec"]["image"] == test_image


def test_install_script_prepares_the_volume_before_the_server_starts(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    status = agent.install(
        "scripted",
        test_image,
        install_script="echo preparing\necho 'from the installer' > /data/installed.txt",
        startup_command=["/bin/sh", "-c", "cat /data/installed.txt; sleep 600"],
        env={"GREETING": "hi"},
    )
    assert status["state"] == "running"
    result = agent.client.post(
        "/containers/scripted/exec", json={"command": "cat /data/installed.txt; echo $GREETING"}
    ).json()
    assert result["status"] == "success"
    assert result["exit_code"] == 0
    assert result["output"] == "from the installer\nhi\n"
    # the server's own volume keeps its files under storage.base_path/volumes/<id>
    on_host = agent.config.storage.volumes_dir / "scripted" / "installed.txt"
    assert on_host.read_text() == "from the installer\n"
    # the one-off install container is gone; only the server's own remains
    assert [c.labels["lightd.role"] for c in agent.owned(docker_client)] == ["server"]


def test_install_without_start_on_completion_ends_ready(agent: Agent, test_image: str) -> None:
    status = agent.install("idle", test_image, startup_command=SERVE, start_on_completion=False)
    assert status["state"] == "ready"
    assert agent.kinds("idle") == ["Started", "CreatingContainer", "Ready"]


def test_failing_install_script_ends_failed_with_its_output(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    status = agent.install(
        "broken",
        test_image,
        install_script="echo step one\necho 'cannot download the game files' >&2\nexit 7",
        startup_command=SERVE,
    )
    assert status["state"] == "failed"
    assert "exited with code 7" in status["error"]
    assert "cannot download the game files" in status["error"]
    assert agent.kinds("broken") == ["Started", "Error"]
    error = next(e for e in agent.events if e.kind == "Error")
    assert error.error == "failed"
    assert error.data is not None
    assert "exited with code 7" in error.data
    assert "step one" in error.data
    # no half-created server container, no leftover install container
    assert agent.owned(docker_client) == []


def test_missing_image_ends_failed_not_4xx(
    agent: Agent, docker_client: docker.DockerClient
) -> None:
    status = agent.install("ghost", "lightd-test-no-such-image:v0", startup_command="true")
    assert status["state"] == "failed"
    assert "lightd-test-no-such-image:v0" in status["error"]
    assert "not found" in status["error"]
    assert agent.kinds("ghost") == ["Started", "Error"]
    error = next(e for e in agent.events if e.kind == "Error")
    assert error.error == "failed"
    assert error.data is not None and "not found" in error.data
    assert agent.owned(docker_client) == []


def test_reinstall_keeps_the_volume_and_replays_the_seed_events(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent.install(
        "again",
        test_image,
        install_script="echo run >> /data/installs.log",
        startup_command=SERVE,
    )
    first = agent.status("again")["container_id"]
    response = agent.client.post("/containers/again/reinstall", json={"timeout": "2s"})
    assert response.status_code == 202
    assert response.json() == {"id": "again", "state": "installing"}
    agent.wait_kinds(
        "again",
        [
            "Started",
            "CreatingContainer",
            "Ready",
            "Running",
            "ReinstallStarted",
            "CreatingContainer",
            "Ready",
            "Running",
        ],
    )
    status = agent.wait_state("again", "running")
    assert status["container_id"] != first
    output = agent.client.post(
        "/containers/again/exec", json={"command": "cat /data/installs.log"}
    ).json()["output"]
    assert output == "run\nrun\n"  # the volume was kept, the script ran twice
    assert len(agent.owned(docker_client)) == 1


def test_failed_reinstall_leaves_the_server_failed_not_deleted(
    agent: Agent, test_image: str
) -> None:
    script = "if [ -f /data/once ]; then echo 'second run refused'; exit 4; fi; touch /data/once"
    agent.install("fragile", test_image, install_script=script, startup_command=SERVE)
    assert agent.client.post("/containers/fragile/reinstall").status_code == 202
    status = agent.wait_state("fragile", "failed")
    assert "exited with code 4" in status["error"]
    assert "second run refused" in status["error"]
    # the state is in memory a moment before its event is durable and published
    wait_until(
        lambda: agent.kinds("fragile")[-2:] == ["ReinstallStarted", "Error"],
        10,
        what="ReinstallStarted then Error as the last events",
    )
    # still known, can be reinstalled or deleted; start refuses with a reason
    response = agent.client.post("/containers/fragile/start")
    assert response.status_code == 409
    assert "reinstall" in response.json()["detail"]
    assert agent.client.get("/containers/fragile").status_code == 200


def test_delete_removes_container_and_optionally_the_volume(
    agent: Agent, test_image: str, docker_client: docker.DockerClient
) -> None:
    agent.install("gone", test_image, startup_command=SERVE)
    volume = f"lightd-{agent.node}-gone-data"
    assert docker_client.volumes.get(volume)
    directory = agent.config.storage.volumes_dir / "gone"
    assert directory.is_dir()
    response = agent.client.delete("/containers/gone", params={"volumes": "true"})
    assert response.status_code == 200
    assert response.json()["state"] == "deleted"
    assert agent.owned(docker_client) == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)
    assert not directory.exists()
    assert agent.client.get("/containers/gone").status_code == 404
    assert agent.kinds("gone")[-1] == "Deleted"
