"""deploy/install-agent.sh, run for real under a temporary LIGHTD_PREFIX (and in --dry-run).

The prefix makes every path the script writes land in a temporary directory, so these tests
install a real virtual environment from real wheels and read back what an operator would find,
without touching the host. The root install (user, ownership) runs in a container in
test_images.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.deploy.conftest import REPO

INSTALL = REPO / "deploy" / "install-agent.sh"
UNIT_SOURCE = REPO / "deploy" / "systemd" / "lightd.service"


def install(prefix: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTD_")}
    env["LIGHTD_PREFIX"] = str(prefix)
    return subprocess.run(
        ["bash", str(INSTALL), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under root outside the venv, with file contents (the venv: names only)."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith("opt/lightd/") and "/bin/" not in relative:
            continue
        if path.is_symlink():
            found[relative] = "-> " + os.readlink(path)
        elif path.is_file():
            found[relative] = path.read_bytes()
        else:
            found[relative] = "dir"
    return found


def test_dry_run_writes_nothing_and_names_every_step(tmp_path: Path) -> None:
    result = install(tmp_path, "--dry-run", "--package", "lightd-agent==0.1.0")

    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    out = result.stdout
    assert "nothing is changed" in out
    assert f"would run: python3 -m venv {tmp_path}/opt/lightd" in out
    assert "pip install --quiet --disable-pip-version-check --upgrade lightd-agent==0.1.0" in out
    assert "would write: /etc/lightd/config.json" in out
    assert f"would run: install -m 0644 {UNIT_SOURCE} {tmp_path}/etc/systemd/system/" in out
    assert "Dry run: nothing was changed" in out


def test_install_creates_a_config_once_and_never_overwrites_it(
    tmp_path: Path, agent_wheels: Path
) -> None:
    first = install(tmp_path, "--wheels", agent_wheels)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "written with a fresh token" in first.stdout
    config_path = tmp_path / "etc/lightd/config.json"
    config = json.loads(config_path.read_text())
    assert re.fullmatch(r"lightd_[0-9a-f]{16,}", config["authorization"]["token"])
    assert config["authorization"]["enabled"] is True
    assert config["storage"]["base_path"] == "/var/lib/lightd"
    assert config_path.stat().st_mode & 0o777 == 0o640
    assert config["authorization"]["token"] not in first.stdout + first.stderr
    lightd = tmp_path / "opt/lightd/bin/lightd"
    version = subprocess.run([lightd, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("lightd ")
    assert (tmp_path / "etc/systemd/system/lightd.service").read_bytes() == (
        UNIT_SOURCE.read_bytes()
    )
    assert os.readlink(tmp_path / "usr/local/bin/lightd") == "/opt/lightd/bin/lightd"
    assert (tmp_path / "var/lib/lightd").is_dir()

    # The operator edits the config; a second run (an upgrade) keeps the edit and the token.
    config["server"]["port"] = 9070
    config_path.write_text(json.dumps(config, indent=2))
    before = snapshot(tmp_path)

    second = install(tmp_path, "--wheels", agent_wheels)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "kept as it is (token unchanged)" in second.stdout
    assert f"{version.stdout.strip()} (unchanged)" in second.stdout
    assert "up to date" in second.stdout
    assert snapshot(tmp_path) == before

    # A dry run over an installed prefix finds everything in place and changes nothing.
    dry = install(tmp_path, "--dry-run", "--wheels", agent_wheels)

    assert dry.returncode == 0, dry.stderr
    assert "would write" not in dry.stdout
    assert "would run: install" not in dry.stdout
    assert snapshot(tmp_path) == before


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    missing = install(tmp_path, "--wheels", tmp_path / "no-such-dir")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    no_wheel = install(tmp_path, "--wheels", empty_dir)
    unknown = install(tmp_path, "--frobnicate")
    no_source = install(tmp_path, "--dry-run")

    assert missing.returncode != 0
    assert "is not a directory" in missing.stderr
    assert no_wheel.returncode != 0
    assert "no lightd_agent wheel" in no_wheel.stderr
    assert unknown.returncode != 0
    assert "unknown argument '--frobnicate'" in unknown.stderr
    assert no_source.returncode != 0
    assert "say where lightd-agent comes from: --wheels DIR" in no_source.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]
