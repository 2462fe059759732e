"""The ``files`` config section: defaults, an environment override, a bad value refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightd_agent.config import ConfigError, load_config

TOKEN = "lightd_" + "0123456789abcdef" * 2


def _config(tmp_path: Path, **files: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"authorization": {"token": TOKEN}, "files": files}))
    return path


def test_files_section_defaults_env_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(_config(tmp_path))
    assert config.files.max_upload == 1024**3
    assert config.files.max_read_inline == 256 * 1024
    assert config.files.workers == 4
    monkeypatch.setenv("LIGHTD_FILES__MAX_UPLOAD", "5000")
    assert load_config(_config(tmp_path)).files.max_upload == 5000
    monkeypatch.delenv("LIGHTD_FILES__MAX_UPLOAD")
    with pytest.raises(ConfigError, match=r"files\.max_upload"):
        load_config(_config(tmp_path, max_upload=0))
    with pytest.raises(ConfigError, match=r"files\.nope"):
        load_config(_config(tmp_path, nope=1))
