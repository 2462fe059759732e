"""Unit tests of single modules: the container schemas, the policy, Docker time parsing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from lightd_agent.backend.base import from_nanoseconds as _from_nanoseconds
from lightd_agent.config import AgentConfig, PolicySection, StorageSection
from lightd_agent.enrolment import advertise_address, services_address
from lightd_agent.errors import PolicyRefused
from lightd_agent.logs import configure_logging
from lightd_agent.policy import check_spec
from lightd_agent.state import parse_docker_time
from lightd_shared.containers import (
    ActionBody,
    ContainerSpec,
    parse_memory,
    parse_volume,
)


def test_spec_defaults() -> None:
    spec = ContainerSpec.model_validate({"id": "s1", "image": "busybox"})
    assert spec.start_on_completion is True
    assert spec.restart_policy.max_restarts == 3
    assert spec.restart_policy.window.total_seconds() == 60
    assert spec.model_dump(mode="json")["restart_policy"]["window"] == "1m"
    assert ActionBody().timeout.total_seconds() == 10
    assert ActionBody.model_validate({"timeout": "1m30s"}).timeout.total_seconds() == 90


@pytest.mark.parametrize(
    ("value", "expected"),
    [(6 * 1024**2, 6 * 1024**2), ("512m", 512 * 1024**2), ("1g", 1024**3), ("8192K", 8 * 1024**2)],
)
def test_parse_memory(value: int | str, expected: int) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["1k", "5m", "lots", "-1", "1.5g", 0])
def test_parse_memory_refuses(value: int | str) -> None:
    with pytest.raises(ValueError):
        parse_memory(value)


def test_parse_volume() -> None:
    assert parse_volume("data:/srv") == ("data", "/srv", False)
    assert parse_volume("/var/lib/lightd/x:/x:ro") == ("/var/lib/lightd/x", "/x", True)
    for bad in ["data", "data:srv", "a:b:c:d", "data:/srv:rx", "../x:/x", "/a/../b:/x", "x:/"]:
        with pytest.raises(ValueError):
            parse_volume(bad)


def test_spec_refuses_duplicate_ports_and_unknown_fields() -> None:
    ports = [{"container": 80}, {"container": 80}]
    with pytest.raises(ValidationError, match="twice"):
        ContainerSpec.model_validate({"id": "s", "image": "i", "ports": ports})
    ports = [{"container": 80, "host": 8080}, {"container": 81, "host": 8080}]
    with pytest.raises(ValidationError, match="host port 8080/tcp twice"):
        ContainerSpec.model_validate({"id": "s", "image": "i", "ports": ports})
    with pytest.raises(ValidationError, match="extra"):
        ContainerSpec.model_validate({"id": "s", "image": "i", "comand": "x"})


def test_policy_allows_binds_under_storage_only(tmp_path: Path) -> None:
    storage = StorageSection(base_path=tmp_path)
    closed = PolicySection()
    inside = ContainerSpec.model_validate(
        {"id": "s", "image": "i", "volumes": [f"{tmp_path}/data:/data2"]}
    )
    check_spec(inside, closed, storage)
    outside = ContainerSpec.model_validate({"id": "s", "image": "i", "volumes": ["/etc:/x"]})
    with pytest.raises(PolicyRefused, match="allow_bind_outside_storage"):
        check_spec(outside, closed, storage)
    check_spec(outside, PolicySection(allow_bind_outside_storage=True), storage)
    named = ContainerSpec.model_validate({"id": "s", "image": "i", "volumes": ["cache:/cache"]})
    check_spec(named, closed, storage)


def test_policy_switches_one_by_one(tmp_path: Path) -> None:
    storage = StorageSection(base_path=tmp_path)
    cases = [
        ({"privileged": True}, "allow_privileged"),
        ({"network_mode": "host"}, "allow_host_network"),
        ({"pid_mode": "host"}, "allow_host_pid"),
        ({"cap_add": ["NET_ADMIN"]}, "allow_cap_add"),
    ]
    for fields, switch in cases:
        spec = ContainerSpec.model_validate({"id": "s", "image": "i", **fields})
        with pytest.raises(PolicyRefused, match=f"policy.{switch}"):
            check_spec(spec, PolicySection(), storage)
        check_spec(spec, PolicySection(**{switch: True}), storage)


def test_parse_docker_time() -> None:
    assert parse_docker_time("2026-01-13T18:17:00.123456789Z") == datetime(
        2026, 1, 13, 18, 17, 0, 123456, tzinfo=UTC
    )
    assert parse_docker_time("2026-01-13T18:17:00Z") == datetime(2026, 1, 13, 18, 17, tzinfo=UTC)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time(None) is None
    assert parse_docker_time("garbage") is None


def test_services_address_defaults_to_the_advertised_address() -> None:
    config = AgentConfig.model_validate(
        {"authorization": {"enabled": False}, "coordinator": {"advertise_address": "agent-1"}}
    )
    assert advertise_address(config) == "agent-1"
    assert services_address(config) == "agent-1"
    config = AgentConfig.model_validate(
        {
            "authorization": {"enabled": False},
            "coordinator": {"advertise_address": "agent-1", "services_address": "10.0.0.5"},
        }
    )
    assert services_address(config) == "10.0.0.5"


def test_docker_event_time_matches_docker_timestamps() -> None:
    # a die event's timeNano and the container's FinishedAt, as this engine reports them
    died = _from_nanoseconds(1_768_328_220_123_456_789)
    assert died == parse_docker_time("2026-01-13T18:17:00.123456789Z")
    assert died.tzinfo is not None


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "expected"), [("info", "WARNING"), ("debug", "DEBUG")])
def test_httpx_request_lines_only_at_debug(level: str, expected: str) -> None:
    configure_logging(level)
    for name in ("httpx", "httpcore"):
        assert logging.getLevelName(logging.getLogger(name).level) == expected
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO) or level == "debug"
