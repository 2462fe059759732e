"""deploy/systemd/*.service: the directives the install script and the programs rely on.

`systemd-analyze verify` checks the unit too where systemd is installed; the directive checks
run everywhere.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lightd_agent.config import StorageSection
from tests.deploy.conftest import REPO

UNIT = REPO / "deploy" / "systemd" / "lightd.service"
COORDINATOR_UNIT = REPO / "deploy" / "systemd" / "lightd-coordinator.service"
INSTALL = REPO / "deploy" / "install-agent.sh"


def read_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def script_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", INSTALL.read_text(), re.MULTILINE)
    assert match, f"{name}= not found in {INSTALL}"
    return match.group(1).strip('"')


def test_unit_runs_the_installed_agent_after_docker_and_restarts_on_failure() -> None:
    unit = read_unit(UNIT)

    assert "docker.service" in unit["Unit"]["Requires"].split()
    assert "docker.service" in unit["Unit"]["After"].split()
    assert unit["Service"]["Restart"] == "on-failure"
    venv = script_value("VENV")
    config = script_value("CONFIG").replace("$CONFIG_DIR", script_value("CONFIG_DIR"))
    assert unit["Service"]["ExecStart"] == f"{venv}/bin/lightd run -c {config}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_sandbox_still_allows_the_docker_socket_and_storage() -> None:
    service = read_unit(UNIT)["Service"]

    assert service["User"] == script_value("SERVICE_USER") == "lightd"
    assert service["SupplementaryGroups"] == "docker"
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    # StateDirectory=lightd is /var/lib/lightd, writable under ProtectSystem=strict: the same
    # directory the agent's default storage.base_path and the install script use.
    assert service["StateDirectory"] == "lightd"
    assert str(StorageSection().base_path) == "/var/lib/lightd"
    assert script_value("STATE_DIR") == "/var/lib/lightd"


def test_coordinator_unit_takes_its_secrets_from_an_environment_file() -> None:
    unit = read_unit(COORDINATOR_UNIT)
    service = unit["Service"]

    assert service["ExecStart"] == (
        "/opt/lightd-coordinator/bin/lightd-coordinator start "
        "-c /etc/lightd-coordinator/config.yaml"
    )
    assert service["EnvironmentFile"] == "/etc/lightd-coordinator/env"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "lightd-coordinator"
    assert service["ProtectSystem"] == "strict"
    production = (REPO / "deploy" / "coordinator.production.yaml").read_text()
    assert 'path: "/var/lib/lightd-coordinator/registry.db"' in production


@pytest.mark.parametrize(
    ("unit_file", "program"),
    [(UNIT, "lightd"), (COORDINATOR_UNIT, "lightd-coordinator")],
    ids=["agent", "coordinator"],
)
def test_systemd_analyze_verify_accepts_the_unit_where_systemd_is_installed(
    tmp_path: Path, unit_file: Path, program: str
) -> None:
    unit = read_unit(unit_file)
    assert unit.sections() == ["Unit", "Service", "Install"]
    # A host without systemd cannot check the unit, and a check that cannot run fails here
    # rather than passing untested (.ci/run installs systemd when it is missing).
    assert shutil.which("systemd-analyze") is not None, (
        "systemd-analyze is missing: install systemd (apt-get install systemd) to verify the units"
    )
    # verify wants ExecStart's binary to exist: point it at this environment's program.
    binary = Path(sys.executable).with_name(program)
    assert binary.exists(), f"{binary} missing: run scripts/install"
    copy = tmp_path / unit_file.name
    text = unit_file.read_text()
    copy.write_text(text.replace(f"/opt/{program}/bin/{program}", str(binary)))
    assert copy.read_text() != text

    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    complaints = [line for line in result.stderr.splitlines() if unit_file.name in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []
