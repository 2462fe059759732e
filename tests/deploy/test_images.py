"""The two program images, built by scripts/build-images exactly as an operator builds them.

One build per session (debootstrap of the local base image the first time, about a minute, then
reused; wheels and image layers are reused while current). Each image is then run for real:
its layout (only its own program), its user, its health check against a live server, and the
agent's install script as root in a fresh container of the base image.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container

from lightd_agent import __version__ as agent_version
from lightd_coordinator import __version__ as coordinator_version
from tests.deploy.conftest import BUILD_IMAGES, REPO, WHEELS, run_script
from tests.harness.docker import Cleanup
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker

AGENT = "lightd-agent:latest"
COORDINATOR = "lightd-coordinator:latest"
# The base the images are built on: scripts/build-images' local Debian base unless the operator
# chose another with LIGHTD_BASE_IMAGE (as scripts/up and docker-compose.yml do).
BASE = os.environ.get("LIGHTD_BASE_IMAGE") or "lightd-python-base:bookworm"
# The image's own health check command, run every half second instead of every 15 s.
FAST_HEALTHCHECK = {"interval": 500_000_000, "timeout": 5_000_000_000, "retries": 3}

MODULES = ["lightd_shared", "lightd_agent", "lightd_coordinator", "docker", "jose", "yaml"]
PROBE = (
    "import importlib.util, json; "
    f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {MODULES!r}}}))"
)


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> None:
    run_script(BUILD_IMAGES, timeout=1800)
    for tag in (AGENT, COORDINATOR, BASE):
        docker_client.images.get(tag)


def run(client: docker.DockerClient, cleanup: Cleanup, image: str, *command: str, **kw: Any) -> str:
    """Run a one-off container to completion; its stdout (ContainerError when it fails)."""
    output = client.containers.run(
        image, list(command), remove=True, labels=cleanup.labels, stderr=False, **kw
    )
    assert isinstance(output, bytes)
    return output.decode().strip()


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until probe() returns something truthy; fail naming `what` after `timeout`."""
    last: list[Any] = [None]

    def answered() -> Any:
        try:
            last[0] = probe()
        except (httpx.HTTPError, docker.errors.APIError) as exc:
            last[0] = exc
            return None
        return last[0]

    try:
        return wait_until(answered, timeout, interval=0.25, what=what)
    except AssertionError:
        pytest.fail(f"timed out waiting for {what}; last: {last[0]!r}")


def published_url(container: Container, port: str) -> str:
    container.reload()
    binding = container.attrs["NetworkSettings"]["Ports"][port][0]
    return f"http://127.0.0.1:{binding['HostPort']}"


def health_status(container: Container) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status"))


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=3)
    return response.json() if response.status_code == 200 else None


def test_agent_image_holds_the_agent_and_not_the_coordinator(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    version = run(docker_client, docker_cleanup, AGENT, "--version")
    modules = json.loads(
        run(docker_client, docker_cleanup, AGENT, "-c", PROBE, entrypoint="python3")
    )
    uid = run(docker_client, docker_cleanup, AGENT, "-u", entrypoint="id")
    docker_cli = run(docker_client, docker_cleanup, AGENT, "--version", entrypoint="docker")
    config = docker_client.images.get(AGENT).attrs["Config"]

    assert version == f"lightd {agent_version}"
    assert modules == {
        "lightd_shared": True,
        "lightd_agent": True,
        "lightd_coordinator": False,
        "docker": True,
        "jose": True,  # verifies the coordinator's per-command JWTs (lightd_agent.security)
        "yaml": False,
    }
    assert uid == "10001"
    assert docker_cli.startswith("Docker version ")  # the client only: no engine in the image
    assert config["User"] == "lightd"
    assert "8070/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["run", "-c", "/etc/lightd/config.json"]
    assert "healthcheck.py" in " ".join(config["Healthcheck"]["Test"])


def test_coordinator_image_holds_the_coordinator_and_not_the_agent(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    version = run(docker_client, docker_cleanup, COORDINATOR, "--version")
    modules = json.loads(
        run(docker_client, docker_cleanup, COORDINATOR, "-c", PROBE, entrypoint="python3")
    )
    config = docker_client.images.get(COORDINATOR).attrs["Config"]

    assert version == f"lightd-coordinator {coordinator_version}"
    assert modules == {
        "lightd_shared": True,
        "lightd_agent": False,
        "lightd_coordinator": True,
        "docker": False,
        "jose": True,
        "yaml": True,
    }
    assert config["User"] == "lightd"
    assert "3001/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["start", "-c", "/etc/lightd-coordinator/config.yaml"]
    assert "/var/lib/lightd-coordinator" in config["Volumes"]


def test_coordinator_image_refuses_to_start_with_the_placeholder_secrets(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    container = docker_client.containers.run(COORDINATOR, detach=True, labels=docker_cleanup.labels)
    status = container.wait(timeout=60)
    logs = container.logs().decode()

    assert status["StatusCode"] != 0
    assert "auth.jwt_secret" in logs
    assert "server.auth_token" in logs
    assert "VENDETTA_JWT_SECRET" in logs


def test_coordinator_container_serves_health_and_turns_healthy(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    jwt_secret, static_token = os.urandom(16).hex(), os.urandom(16).hex()
    container = docker_client.containers.run(
        COORDINATOR,
        detach=True,
        labels=docker_cleanup.labels,
        environment={
            "VENDETTA_JWT_SECRET": jwt_secret,
            "LIGHTD_COORD_SERVER__AUTH_TOKEN": static_token,
        },
        ports={"3001/tcp": ("127.0.0.1", None)},
        healthcheck=FAST_HEALTHCHECK,
    )
    url = published_url(container, "3001/tcp")

    health = wait_for("the coordinator's /health", lambda: get_json(f"{url}/health"))
    unauthenticated = httpx.get(f"{url}/api/v1/nodes", timeout=5)
    authenticated = httpx.get(
        f"{url}/api/v1/nodes", headers={"Authorization": f"Bearer {static_token}"}, timeout=5
    )
    wait_for("Docker's health status 'healthy'", lambda: health_status(container) == "healthy")
    logs = container.logs().decode()

    assert health["status"] == "healthy"
    assert unauthenticated.status_code == 401  # the production config has auth on
    assert authenticated.status_code == 200
    assert jwt_secret not in logs and static_token not in logs
    registry = container.exec_run(["ls", "/var/lib/lightd-coordinator"]).output.decode()
    assert "registry.db" in registry


def test_agent_container_reaches_the_engine_through_the_socket_group(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    with tempfile.TemporaryDirectory(prefix="lightd-deploy-storage-") as storage:
        os.chmod(storage, 0o777)  # the image's lightd user (uid 10001) writes its state here
        container = docker_client.containers.run(
            AGENT,
            detach=True,
            labels=docker_cleanup.labels,
            environment={
                "LIGHTD_NODE__ID": f"deploy-test-{docker_cleanup.value}",
                "LIGHTD_STORAGE__BASE_PATH": storage,
            },
            volumes={
                "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                storage: {"bind": storage, "mode": "rw"},
            },
            group_add=[str(socket_gid)],
            ports={"8070/tcp": ("127.0.0.1", None)},
            healthcheck=FAST_HEALTHCHECK,
        )
        try:
            url = published_url(container, "8070/tcp")
            health = wait_for("the agent's /health", lambda: get_json(f"{url}/health"))
            wait_for(
                "Docker's health status 'healthy'", lambda: health_status(container) == "healthy"
            )
            token = container.exec_run(["lightd", "token", "show"]).output.decode().strip()
            # the docker CLI in the image, as the agent's own user: the seed's `docker ps`
            # exec example, answered by the host's engine through the socket
            docker_ps = container.exec_run(
                ["docker", "ps", "--filter", f"id={container.id}", "--format", "{{.Names}}"]
            )
            listed = httpx.get(
                f"{url}/containers", headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
            logs = container.logs().decode()
        finally:
            container.remove(force=True)

    assert health["docker"]["reachable"] is True
    assert health["node"]["id"] == f"deploy-test-{docker_cleanup.value}"
    assert token.startswith("lightd_")
    assert listed.status_code == 200
    assert docker_ps.exit_code == 0, docker_ps.output
    assert docker_ps.output.decode().strip() == container.name
    assert "wrote a default one with a fresh token" in logs
    assert token not in logs


def test_install_script_as_root_in_a_fresh_container_is_idempotent(
    images: None, docker_client: docker.DockerClient, docker_cleanup: Cleanup
) -> None:
    script = """
        set -e
        /src/deploy/install-agent.sh --wheels /wheels --no-start >/tmp/first.log
        cp /etc/lightd/config.json /tmp/config.first
        /src/deploy/install-agent.sh --wheels /wheels --no-start >/tmp/second.log 2>/tmp/second.err
        cmp /etc/lightd/config.json /tmp/config.first && echo "config: unchanged"
        echo "warnings: $(wc -c </tmp/second.err)"
        grep -c 'kept as it is' /tmp/second.log
        stat -c '%n %U:%G %a' /etc/lightd /etc/lightd/config.json /var/lib/lightd
        runuser -u lightd -- lightd token show -c /etc/lightd/config.json | cut -c1-7
        readlink /usr/local/bin/lightd
    """
    output = run(
        docker_client,
        docker_cleanup,
        BASE,
        "bash",
        "-c",
        script,
        volumes={
            str(REPO / "deploy"): {"bind": "/src/deploy", "mode": "ro"},
            str(WHEELS): {"bind": "/wheels", "mode": "ro"},
        },
        network_disabled=True,  # --wheels means no package index at all
    )

    assert output.splitlines() == [
        "config: unchanged",
        "warnings: 0",
        "1",
        "/etc/lightd root:lightd 750",
        "/etc/lightd/config.json root:lightd 640",
        "/var/lib/lightd lightd:lightd 750",
        "lightd_",
        "/opt/lightd/bin/lightd",
    ]
