"""One field list each: the agent's in-memory server and event agree with the shared models.

``Server`` (``servers/model.py``) keeps the run facts of
:class:`lightd_shared.containers.ServerFacts`, which the state file (``StoredServer``) and the
status views extend; it is built from and into them through one tuple, ``FACTS``.
``LifecycleEvent`` (``events.py``) has the fields of the wire's ``ServerEvent``, which is read
from it by attribute. These tests fail when one side gains a field the other lacks.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime

from lightd_agent.api.routes.events import to_wire
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.servers.model import FACTS, Server
from lightd_agent.state import StoredServer
from lightd_shared.containers import (
    ContainerSpec,
    ContainerStatus,
    ContainerView,
    PortMapping,
    ServerEvent,
    ServerFacts,
)

WHEN = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
WIRE_FACTS = ["state", "error", "exit_code", "started_at", "finished_at", "container_id"]
"""The run facts in the order the state file and the views write them (pinned)."""


def _server() -> Server:
    spec = ContainerSpec.model_validate(
        {"id": "s1", "image": "lightd-test-busybox:latest", "ports": [{"container": 80}]}
    )
    server = Server(
        spec=spec,
        state="crashed",
        error="exit code 3",
        exit_code=3,
        started_at=WHEN,
        finished_at=WHEN,
        container_id="c" * 64,
        published=[PortMapping(container=80, host=8080)],
    )
    server.restarts.append(1.0)
    return server


def test_the_facts_are_the_shared_models_fields() -> None:
    assert FACTS == tuple(name for name in ServerFacts.model_fields if name != "id")
    assert set(FACTS) <= set(StoredServer.model_fields)
    assert set(FACTS) <= set(ContainerStatus.model_fields) <= set(ContainerView.model_fields)


def test_server_declares_every_fact_with_the_shared_type() -> None:
    declared = typing.get_type_hints(Server)
    shared = typing.get_type_hints(ServerFacts)  # Timestamp is an Annotated datetime
    for name in FACTS:
        assert name in declared, f"Server lacks the run fact {name!r}"
        assert declared[name] == shared[name], name


def test_the_state_file_round_trips_every_fact() -> None:
    server = _server()
    record = server.record()
    # the state file's shape (what a restarted agent reads): the facts, the spec, and the
    # write-ahead journal of the change that wrote it (servers/writer.py; empty here)
    assert list(record.model_dump(mode="json")) == [*WIRE_FACTS, "spec", "journal"]
    again = Server.from_record(StoredServer.model_validate_json(record.model_dump_json()))
    assert again.facts() == server.facts()
    assert again.spec == server.spec


def test_the_view_carries_every_fact_in_the_wire_order() -> None:
    view = _server().view().model_dump(mode="json")
    assert list(view) == ["id", *WIRE_FACTS, "restarts", "spec", "ports"]
    assert view["exit_code"] == 3 and view["container_id"] == "c" * 64
    assert view["restarts"] == 1 and view["ports"] == [
        {"container": 80, "host": 8080, "protocol": "tcp"}
    ]


def test_lifecycle_event_has_the_wire_events_fields() -> None:
    fields = {field.name: field for field in dataclasses.fields(LifecycleEvent)}
    assert set(fields) == set(ServerEvent.model_fields)
    for name, wire in ServerEvent.model_fields.items():
        if not wire.is_required():  # an optional wire field has the same default here
            assert fields[name].default == wire.default, name


def test_the_bus_numbers_an_event_and_keeps_every_other_field() -> None:
    bus = EventBus()
    event = LifecycleEvent(
        server="s1",
        kind="Error",
        state="failed",
        error="timeout",
        data="the install ran out of time",
        exit_code=124,
        timestamp=WHEN,
    )
    numbered = bus.publish(event)
    assert numbered.id > 0
    assert dataclasses.replace(numbered, id=0) == event
    wire = to_wire(numbered).model_dump(mode="json")
    assert set(wire) == set(ServerEvent.model_fields)
    assert wire["exit_code"] == 124 and wire["data"] == "the install ran out of time"
