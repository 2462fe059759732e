"""``lightd token reset`` rewrites the config in place: same mode, owner and group as before.

A systemd install keeps ``/etc/lightd/config.json`` as ``root:lightd 0640`` and runs the agent as
``lightd``: a reset that left a ``root:root 0600`` file would lock the agent out of its config.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from lightd_agent.cli import main
from lightd_agent.config import load_config

TOKEN = "lightd_" + "0123456789abcdef" * 2


def _config(path: Path, mode: int) -> Path:
    path.write_text(json.dumps({"authorization": {"token": TOKEN}, "server": {"port": 8123}}))
    path.chmod(mode)
    return path


def _reset(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["token", "reset", "-c", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    assert token != TOKEN and load_config(path).authorization.token == token
    return token


@pytest.mark.parametrize("mode", [0o640, 0o600, 0o644])
def test_reset_keeps_the_files_mode(
    tmp_path: Path, mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path / "config.json", mode)
    _reset(path, capsys)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp file left


def test_reset_keeps_the_files_owner_and_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path / "config.json", 0o640)
    # as root (CI, this machine) give it away, as the systemd layout does (root:lightd);
    # otherwise the caller's own ids are all a test can set
    owner = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    _reset(path, capsys)
    after = path.stat()
    assert (after.st_uid, after.st_gid) == owner
    assert stat.S_IMODE(after.st_mode) == 0o640


def test_reset_keeps_the_mode_when_it_may_not_change_owners(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []

    def refuse(fd: int, uid: int, gid: int) -> Any:
        calls.append((uid, gid))
        raise PermissionError(1, "Operation not permitted")

    path = _config(tmp_path / "config.json", 0o640)
    before = path.stat()
    monkeypatch.setattr(os, "fchown", refuse)  # what a caller that is not root gets
    _reset(path, capsys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert calls == [(before.st_uid, before.st_gid), (-1, before.st_gid)]  # then the group alone
