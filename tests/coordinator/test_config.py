"""Configuration: the seed's sections and defaults, environment overrides, clear errors."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from lightd_coordinator.config import (
    ConfigError,
    Settings,
    default_yaml,
    load_settings,
)

SEED = Path(__file__).resolve().parents[2] / "docs" / "seeds" / "003-coordination.md"
ENV_NAMES = ("VENDETTA_COORD_HOST", "VENDETTA_COORD_PORT", "VENDETTA_JWT_SECRET")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LIGHTD_COORD_") or name in ENV_NAMES:
            monkeypatch.delenv(name)


def _seed_config() -> dict[str, dict[str, object]]:
    text = SEED.read_text(encoding="utf-8")
    block = re.search(r"### Default Configuration File\n```yaml\n(.*?)```", text, re.S)
    assert block is not None
    loaded: dict[str, dict[str, object]] = yaml.safe_load(block.group(1))
    return loaded


def test_default_file_holds_the_seeds_sections_and_values() -> None:
    seed = _seed_config()
    ours = yaml.safe_load(default_yaml())
    # the seed's sections first (server, registry, websocket, auth, logging), then our own
    assert list(ours)[: len(seed)] == list(seed)
    assert list(ours)[len(seed) :] == ["activity"]
    for section, values in seed.items():
        for key, value in values.items():
            assert ours[section][key] == value, f"{section}.{key}"


def test_seed_file_loads_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_seed_config()), encoding="utf-8")
    assert load_settings(path) == load_settings(None) == Settings()
    written = tmp_path / "written.yaml"
    written.write_text(default_yaml(), encoding="utf-8")
    assert load_settings(written) == Settings()
    settings = load_settings(path)
    assert settings.server.read_timeout == timedelta(seconds=30)
    assert settings.server.idle_timeout == timedelta(seconds=120)
    assert settings.registry.node_timeout == timedelta(seconds=60)
    assert settings.auth.token_expiry == timedelta(hours=24)


def test_seed_environment_variables_and_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  host: 10.0.0.1\n  port: 4000\nregistry:\n  max_retries: 1\n")
    monkeypatch.setenv("VENDETTA_COORD_HOST", "127.0.0.2")
    monkeypatch.setenv("VENDETTA_COORD_PORT", "4100")
    monkeypatch.setenv("VENDETTA_JWT_SECRET", "from-the-environment-123")
    monkeypatch.setenv("LIGHTD_COORD_REGISTRY__NODE_TIMEOUT", "90s")
    monkeypatch.setenv("LIGHTD_COORD_WEBSOCKET__ORIGINS", '["http://a.example"]')
    monkeypatch.setenv("LIGHTD_COORD_AUTH__ENABLED", "true")
    settings = load_settings(path)
    assert (settings.server.host, settings.server.port) == ("127.0.0.2", 4100)
    assert settings.auth.jwt_secret == "from-the-environment-123"
    assert settings.auth.enabled is True
    assert settings.registry.node_timeout == timedelta(seconds=90)
    assert settings.registry.max_retries == 1  # from the file, untouched by the environment
    assert settings.websocket.origins == ["http://a.example"]
    assert settings.websocket.ping_period == timedelta(seconds=30)  # default kept


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("server:\n  port: [1\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("server: 5\n", "server must be a mapping"),
        ("server:\n  hots: x\n", "server.hots: unknown key"),
        ("serve:\n  host: x\n", "serve: unknown key"),
        ("server:\n  port: 70000\n", "server.port"),
        ("server:\n  read_timeout: soon\n", "server.read_timeout"),
        ("registry:\n  provider: etcd\n", "registry.provider"),
        ("registry:\n  node_timeout: 0s\n", "registry.node_timeout"),
        ("auth:\n  jwt_secret: short\n", "auth.jwt_secret"),
        ("logging:\n  format: xml\n", "logging.format"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message.strip() or "YAML" in message
    assert "Value error" not in message  # pydantic's prefix, noise to an operator


def test_missing_file_and_bad_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    monkeypatch.setenv("VENDETTA_COORD_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(None)


def test_auth_with_the_sample_secret_refuses_to_start_unless_dev() -> None:
    settings = Settings(auth={"enabled": True})
    with pytest.raises(ConfigError, match="sample"):
        settings.check_startable()
    settings.check_startable(dev=True)
    Settings(auth={"enabled": True}, server={"dev": True}).check_startable()
    Settings(
        auth={"enabled": True, "jwt_secret": "a-real-secret-of-some-length"},
        server={"auth_token": "a-real-static-token"},
    ).check_startable()
    Settings().check_startable()  # auth off: the samples open nothing
