"""The schema rules: strict types, unknown fields rejected or ignored by kind of body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from lightd_shared.commands import Command, CommandResult
from lightd_shared.events import Event
from lightd_shared.nodes import Heartbeat, NodeRecord, NodeRegistration, NodeUpdate
from lightd_shared.remote import RemoteSettings, StatusUpdate
from lightd_shared.timestamps import format_timestamp, parse_timestamp
from lightd_shared.tokens import generate_token, is_token, mask_token, tokens_equal

REG = {"id": "node-1", "address": "localhost", "port": 8080}


def test_operator_bodies_reject_unknown_fields_by_name() -> None:
    with pytest.raises(ValidationError) as info:
        Command.model_validate({"type": "exec", "action": "ls", "tiemout": "3s"})
    assert "tiemout" in str(info.value)
    with pytest.raises(ValidationError, match="prot"):
        NodeUpdate.model_validate({"prot": 1})
    with pytest.raises(ValidationError, match="urll"):
        RemoteSettings.model_validate({"urll": "http://x"})


def test_peer_bodies_ignore_unknown_fields() -> None:
    node = NodeRegistration.model_validate({**REG, "gpu_count": 4})
    assert node.id == "node-1"
    assert not hasattr(node, "gpu_count")
    update = StatusUpdate.model_validate(
        {"event": "update", "server": "s1", "status": "ready", "x": 1}
    )
    assert update.status == "ready"
    assert Heartbeat.model_validate({"load": 0.5}).services is None
    result = CommandResult.model_validate(
        {
            "id": "c",
            "node_id": "n",
            "status": "success",
            "command": {"type": "exec", "action": "ls", "future_field": True},
        }
    )
    assert result.command is not None and result.command.action == "ls"


@pytest.mark.parametrize(
    "bad",
    [
        {**REG, "port": "8080"},  # a string where a number belongs
        {**REG, "port": 70000},
        {**REG, "port": 0},
        {**REG, "status": "sleeping"},
        {**REG, "id": "bad id with spaces"},
        {**REG, "labels": {"env": 1}},
        {"id": "node-1", "port": 8080},  # address missing
    ],
)
def test_registration_is_strict(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NodeRegistration.model_validate(bad)


def test_registration_name_defaults_to_id_and_roundtrips_without_it() -> None:
    node = NodeRegistration.model_validate(REG)
    assert node.name == "node-1"
    assert node.model_dump(mode="json", exclude_unset=True) == REG


def test_status_values_are_the_seeds_three_plus_runtime() -> None:
    for status in ("installing", "ready", "failed", "running", "stopped", "crashed"):
        assert StatusUpdate(server="s", status=status).status == status  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        StatusUpdate.model_validate({"server": "s", "status": "exploded"})


def test_remote_enabled_needs_url_and_token() -> None:
    with pytest.raises(ValidationError, match="url and token"):
        RemoteSettings.model_validate({"enabled": True})
    with pytest.raises(ValidationError, match="token"):
        RemoteSettings.model_validate(
            {"enabled": True, "url": "https://x/api", "token": "not-a-lightd-token"}
        )
    settings = RemoteSettings.model_validate(
        {"enabled": True, "url": "https://panel.example/api", "token": generate_token()}
    )
    assert settings.endpoint("update") == "https://panel.example/api/update"
    assert settings.timeout == timedelta(seconds=10)
    assert settings.health_interval == timedelta(seconds=30)


def test_timestamps_are_rfc3339_utc_with_z() -> None:
    record = NodeRecord.model_validate(
        {**REG, "created_at": "2026-01-13T20:17:00+02:00", "last_seen": "2026-01-13T18:17:00Z"}
    )
    dumped = record.model_dump(mode="json")
    assert dumped["created_at"] == "2026-01-13T18:17:00Z"
    assert dumped["last_seen"] == "2026-01-13T18:17:00Z"
    assert format_timestamp(datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC)).endswith(".000500Z")
    with pytest.raises(ValueError, match="no time zone"):
        parse_timestamp("2026-01-13T18:17:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-00:31"]
)
def test_timestamps_outside_utc_range_are_value_errors(text: str) -> None:
    # the text is valid RFC 3339, but its UTC time is past year 9999 (or before year 1):
    # a ValueError (422), never an OverflowError (500)
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(text)
    with pytest.raises(ValidationError, match="finished"):
        CommandResult.model_validate(
            {"id": "c", "node_id": "n", "status": "success", "finished": text}
        )


def test_event_envelope_defaults_timestamp_and_reads_new_types() -> None:
    event = Event.model_validate({"type": "some_future_type", "data": {"a": 1}})
    assert event.timestamp.tzinfo is not None
    assert event.model_dump(mode="json")["timestamp"].endswith("Z")
    with pytest.raises(ValidationError):
        Event.model_validate({"type": "Bad Type"})


def test_tokens() -> None:
    token = generate_token()
    assert is_token(token) and len(token) == len("lightd_") + 32
    assert generate_token() != token
    assert tokens_equal(token, token)
    assert not tokens_equal(token[:-1] + "0" if token[-1] != "0" else token[:-1] + "1", token)
    assert not tokens_equal(None, token)
    masked = mask_token(token)
    assert masked is not None and token not in masked and masked.startswith("lightd_")


@pytest.mark.parametrize(
    "address", ["localhost", "10.0.0.5", "::1", "[::1]", "fe80::1%eth0", "node_1.example.com"]
)
def test_node_addresses_are_host_names_or_ip_literals(address: str) -> None:
    assert NodeRegistration.model_validate({**REG, "address": address}).address == address
    assert NodeUpdate.model_validate({"address": address}).address == address


@pytest.mark.parametrize(
    "address",
    ["http://10.0.0.5", "10.0.0.5:8080", "10.0.0.5/health", "node 1", "999.1.1.1", "[::1", "-x"],
)
def test_node_addresses_with_scheme_port_path_or_junk_are_refused(address: str) -> None:
    for model, body in ((NodeRegistration, {**REG, "address": address}), (NodeUpdate, {})):
        with pytest.raises(ValidationError) as info:
            model.model_validate({**body, "address": address})
        assert info.value.errors()[0]["loc"] == ("address",)
        assert "host name or IP address" in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8080/health", "https://[::1]:9/x?y=1", "http://node-1/", "HTTP://a"],
)
def test_health_urls_are_absolute_http_urls_kept_as_written(url: str) -> None:
    assert NodeRegistration.model_validate({**REG, "health_url": url}).health_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "ftp://10.0.0.5/health",
        "/health",
        "http://",
        "http://a b/",
        "http://x:99999/",
        "http://999.1.1.1/",
        "http://x/\x00",
    ],
)
def test_unusable_health_urls_are_refused(url: str) -> None:
    for model, body in ((NodeRegistration, REG), (NodeUpdate, {})):
        with pytest.raises(ValidationError) as info:
            model.model_validate({**body, "health_url": url})
        assert info.value.errors()[0]["loc"] == ("health_url",)
        assert "health_url" in info.value.errors()[0]["msg"]


def test_stored_records_load_whatever_an_older_registry_kept() -> None:
    # the checks are at the edge; a record written before them must still load
    record = NodeRecord.model_validate(
        {
            **REG,
            "address": "http://old",
            "health_url": "http://[::1",
            "created_at": "2026-01-13T18:17:00Z",
            "last_seen": "2026-01-13T18:17:00Z",
        }
    )
    assert record.health_url == "http://[::1"


@pytest.mark.parametrize(
    ("configured", "shown"),
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://panel.example.com/api/remote", "https://panel.example.com/api/remote"),
        ("https://panel.example.com/api/", "https://panel.example.com/api/"),
        ("https://user:secret@panel.example.com", "https://***@panel.example.com"),
    ],
)
def test_the_remote_url_is_shown_as_configured(configured: str, shown: str) -> None:
    settings = RemoteSettings(url=configured)
    assert settings.shown_url() == shown
    assert settings.endpoint("update").endswith("/update")
    assert "//update" not in settings.endpoint("update").split("://", 1)[1]
