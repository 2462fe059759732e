"""config.json, LIGHTD_* overrides, one clear error for a bad config, and the lightd CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from lightd_agent.cli import main
from lightd_agent.config import ConfigError, find_config_path, load_config
from lightd_shared.tokens import TOKEN_PATTERN
from tests.agent.conftest import TOKEN, Agent
from tests.harness.servers import free_port


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_defaults_from_a_minimal_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "c.json", {"authorization": {"token": TOKEN}}))
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8070)
    assert config.authorization.enabled is True
    assert config.docker.socket_path == "/var/run/docker.sock"
    assert config.remote.enabled is False
    assert config.node.id  # the host name
    assert not any(vars(config.policy).values())  # every policy switch off


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "c.json", {"authorization": {"token": TOKEN}, "server": {"port": 1}})
    monkeypatch.setenv("LIGHTD_SERVER__PORT", "9000")
    monkeypatch.setenv("LIGHTD_NODE__ID", "node-from-env")
    monkeypatch.setenv("LIGHTD_REMOTE__ENABLED", "true")
    monkeypatch.setenv("LIGHTD_REMOTE__URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("LIGHTD_REMOTE__TOKEN", "lightd_" + "ab" * 16)
    monkeypatch.setenv("LIGHTD_POLICY__ALLOW_CAP_ADD", "true")
    monkeypatch.setenv("LIGHTD_DOCKER__CALL_TIMEOUT", "1m30s")
    config = load_config(path)
    assert config.server.port == 9000
    assert config.node.id == "node-from-env"
    assert config.remote.enabled is True
    assert config.remote.endpoint("update") == "http://127.0.0.1:9/api/update"
    assert config.policy.allow_cap_add is True
    assert config.docker.call_timeout.total_seconds() == 90


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"authorization": {"token": TOKEN}, "server": {"port": 70000}}, "server.port"),
        ({"authorization": {"token": TOKEN}, "sever": {}}, "sever"),
        ({"authorization": {"enabled": True}}, "token is not set"),
        ({"authorization": {"token": TOKEN}, "docker": {"call_timeout": "soon"}}, "call_timeout"),
        ({"authorization": {"token": TOKEN}, "remote": {"enabled": True}}, "remote"),
        ({"authorization": {"token": TOKEN}, "node": {"id": "bad id!"}}, "node.id"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, document: object, words: str) -> None:
    path = _write(tmp_path / "bad.json", document)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert words in message


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "c.json", {"authorization": {"token": TOKEN}})
    monkeypatch.setenv("LIGHTD_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"server\.port.*LIGHTD_SERVER__PORT"):
        load_config(path)


def test_json_syntax_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "server": {"port": 80,}\n}')
    with pytest.raises(ConfigError, match="line 2"):
        load_config(path)


def test_default_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if not Path("/etc/lightd/config.json").exists():
        with pytest.raises(ConfigError, match=r"config\.json"):
            find_config_path()
    _write(tmp_path / "config.json", {"authorization": {"token": TOKEN}})
    assert find_config_path() == Path("config.json")
    with pytest.raises(ConfigError, match="no such config file"):
        find_config_path(tmp_path / "missing.json")


def test_run_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.json", {"server": {"port": "http"}, "authorization": {}})
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "server.port" in err
    assert "authorization" in err
    assert main(["run", "--config", str(tmp_path / "missing.json")]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_config_prints_a_complete_default_with_a_fresh_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["config"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert re.fullmatch(TOKEN_PATTERN, first["authorization"]["token"])
    assert first["authorization"]["token"] != second["authorization"]["token"]
    for section in ("server", "authorization", "docker", "storage", "remote", "node", "policy"):
        assert section in first, section
    assert first["server"] == {**first["server"], "host": "0.0.0.0", "port": 8070}
    path = _write(tmp_path / "config.json", first)
    assert load_config(path).authorization.token == first["authorization"]["token"]
    target = tmp_path / "written.json"
    assert main(["config", "-o", str(target)]) == 0
    assert load_config(target).authorization.enabled is True
    assert main(["config", "-o", str(target)]) == 1  # never overwrites


def test_token_show_and_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path / "c.json", {"authorization": {"token": TOKEN}, "server": {"port": 8123}}
    )
    assert main(["token", "show", "-c", str(path)]) == 0
    assert capsys.readouterr().out.strip() == TOKEN
    assert main(["token", "reset", "-c", str(path)]) == 0
    new = capsys.readouterr().out.strip()
    assert re.fullmatch(TOKEN_PATTERN, new) and new != TOKEN
    config = load_config(path)
    assert config.authorization.token == new
    assert config.server.port == 8123  # the rest of the file is kept


@pytest.mark.docker
def test_status_prints_health_readably(
    agent: Agent, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["status", "--url", agent.url]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^status\s+ok$", out, re.M)
    assert re.search(rf"^node\s+{agent.node}", out, re.M)
    assert re.search(r"^docker\s+reachable", out, re.M)
    # whole seconds, as the documents write uptime (3m3s, never 3m3.07583s or 412.5ms)
    assert re.search(r"^uptime\s+(\d+h)?(\d+m)?\d+s$", out, re.M), out
    assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", httpx.get(agent.url + "/health").json()["uptime"])
    # no Python spellings: coordinator.enabled is "no", an empty value "-"
    assert not re.search(r"\s(None|True|False)$", out, re.M), out
    assert re.search(r"^coordinator\.enabled\s+no$", out, re.M), out
    assert main(["status", "--url", agent.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    port = free_port()
    config = _write(
        tmp_path / "c.json",
        {"authorization": {"token": TOKEN}, "server": {"host": "0.0.0.0", "port": port}},
    )
    assert main(["status", "-c", str(config)]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("remote", "timeout"),
        ("remote", "health_interval"),
        ("remote", "retry_max_delay"),
        ("docker", "call_timeout"),
        ("docker", "install_timeout"),
        ("docker", "reconnect_interval"),
        ("coordinator", "heartbeat_interval"),
    ],
)
def test_zero_intervals_and_timeouts_are_refused(tmp_path: Path, section: str, field: str) -> None:
    # "0s" would make a loop spin (hundreds of GET /health a second) or every call time out.
    document = {"authorization": {"token": TOKEN}, section: {field: "0s"}}
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path / "zero.json", document))
    message = str(caught.value)
    assert f"{tmp_path / 'zero.json'}: {section}.{field}: must be greater than 0s" in message
    document[section][field] = "0"
    with pytest.raises(ConfigError, match=f"{section}.{field}: must be greater than 0s"):
        load_config(_write(tmp_path / "zero.json", document))
    document[section][field] = "100ms"
    assert load_config(_write(tmp_path / "ok.json", document))


@pytest.mark.parametrize(
    "document",
    [
        {"server": {"port": 70000}, "docker": {"call_timeout": "0s"}},
        {"authorization": {}, "server": {"port": 70000}, "docker": {"call_timeout": "0s"}},
        {
            "authorization": {"enabled": True},
            "server": {"port": 70000},
            "docker": {"call_timeout": "0s"},
        },
    ],
)
def test_missing_token_is_reported_with_every_other_error(
    tmp_path: Path, document: dict[str, object]
) -> None:
    path = _write(tmp_path / "c.json", document)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid configuration:"
    errors = [line.strip() for line in lines[1:]]
    assert len(errors) == 3, errors
    assert all(line.startswith(f"{path}: ") for line in errors)
    assert any(line.startswith(f"{path}: server.port: ") for line in errors)
    assert any(line.startswith(f"{path}: docker.call_timeout: must be greater") for line in errors)
    assert f"{path}: authorization.token: authorization is enabled but token is not set" in str(
        caught.value
    )
    assert "(top level)" not in str(caught.value)


def test_disabled_authorization_needs_no_token(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "c.json", {"authorization": {"enabled": False}}))
    assert config.authorization.token is None


def test_run_prints_the_documented_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/agent.md shows this exact output; keep the two in step.
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "config.json", {"server": {"port": 70000}})
    assert main(["run", "-c", "config.json"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lightd: invalid configuration:\n"
        "  config.json: server.port: Input should be less than or equal to 65535\n"
        "  config.json: authorization.token: authorization is enabled but token is not set; "
        "generate one with `lightd token reset` or `lightd config`"
    )


def test_url_passwords_are_secrets_for_the_log_filter(tmp_path: Path) -> None:
    document = {
        "authorization": {"token": TOKEN},
        "remote": {"url": "https://panel:pw-remote@panel.example/api"},
        "coordinator": {"url": "http://agent:pw-coordinator@coordinator:3001"},
        "remotes": [{"name": "other", "url": "https://pw-only@other.example/api"}],
    }
    secrets = load_config(_write(tmp_path / "c.json", document)).secrets()
    assert "panel:pw-remote@" in secrets
    assert "agent:pw-coordinator@" in secrets
    assert "pw-only@" in secrets


def test_a_coordinator_url_alone_enables_enrolment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 6: "an agent whose config has coordinator{url,token} registers itself"."""
    base = {"authorization": {"token": TOKEN}}
    joined = {"url": "http://coordinator:3001", "token": TOKEN}
    config = load_config(_write(tmp_path / "a.json", {**base, "coordinator": joined}))
    assert config.coordinator.enabled is True
    kept_out = {**joined, "enabled": False}
    config = load_config(_write(tmp_path / "b.json", {**base, "coordinator": kept_out}))
    assert config.coordinator.enabled is False
    assert load_config(_write(tmp_path / "c.json", base)).coordinator.enabled is False
    monkeypatch.setenv("LIGHTD_COORDINATOR__URL", "http://coordinator:3001")
    assert load_config(tmp_path / "c.json").coordinator.enabled is True


@pytest.mark.parametrize("value", ["http://agent-1", "agent-1:8070", "agent 1", "a/b"])
def test_advertise_address_is_a_host_the_coordinator_accepts(tmp_path: Path, value: str) -> None:
    """The coordinator refuses such an address at registration (422): refuse it at start."""
    document = {"authorization": {"token": TOKEN}, "coordinator": {"advertise_address": value}}
    with pytest.raises(ConfigError, match=r"coordinator\.advertise_address"):
        load_config(_write(tmp_path / "c.json", document))
