"""The SSE envelope (seed ``003``): every message on ``/ws`` carries ``{type, timestamp, data}``.

The SSE ``id:`` line carries the event's sequence number; it is not part of the envelope.

``server_update`` (lightd's own type) has one data shape, :class:`ServerUpdate`
``{"node", "server", "update"}``, whichever route brought it in (remote sync's ``/update`` or a
relay through ``POST /api/v1/nodes/{id}/events``). ``node`` is always the node the coordinator
authenticated, never a value taken from a body.

``schedule_started``, ``schedule_task``, ``schedule_finished`` and ``schedule_skipped`` (a
server's scheduled tasks) have :class:`ScheduleUpdate` ``{"node", "server", "event"}``, relayed
by the node as :class:`RelayedScheduleEvent`, ``node`` set the same way.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import Field, model_validator

from lightd_shared.base import Payload
from lightd_shared.remote import ErrorUpdate, RemoteUpdate, StatusUpdate
from lightd_shared.schedules import ScheduleEvent
from lightd_shared.timestamps import Timestamp, utcnow

__all__ = [
    "EVENT_ID_PATTERN",
    "EVENT_TYPES",
    "Event",
    "EventType",
    "RelayedEvent",
    "RelayedScheduleEvent",
    "RelayedScheduleUpdate",
    "RelayedServerUpdate",
    "ScheduleEventType",
    "ScheduleUpdate",
    "ServerUpdate",
    "parse_event_id",
]

_EVENT_ID = re.compile(r"[0-9]{1,19}")
EVENT_ID_PATTERN = r"^([0-9]{1,19})?$"
"""What :func:`parse_event_id` takes (or nothing), for API documents."""


def parse_event_id(value: str) -> int:
    """An SSE ``Last-Event-ID``: 1 to 19 ASCII digits (an int64), else :class:`ValueError`.

    ``str.isdigit`` is not enough: it takes ``"²"``, which ``int()`` then refuses, and a text of
    thousands of digits would hit Python's limit on ``int()``; both were 500s.
    """
    if not _EVENT_ID.fullmatch(value):
        shown = f"{value[:40]!r}{'…' if len(value) > 40 else ''}"
        raise ValueError(
            f"must be a non-negative integer event id (1 to 19 digits 0-9), not {shown}"
        )
    return int(value)


EventType = Literal[
    "initial_state",
    "node_registered",
    "node_updated",
    "node_unregistered",
    "command_result",
    "node_inactive",
    "server_update",
    "schedule_started",
    "schedule_task",
    "schedule_finished",
    "schedule_skipped",
]
"""Event types the coordinator emits: the seed's five, then lightd's own."""

EVENT_TYPES: tuple[str, ...] = typing.get_args(EventType)


class Event(Payload):
    """``{"type": ..., "timestamp": ..., "data": ...}``.

    ``type`` is read as any lower-case word so that a client keeps working when a newer
    coordinator adds a type; producers use :data:`EventType`.
    """

    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    timestamp: Timestamp = Field(default_factory=utcnow)
    data: Any = None


def _same_server(server: str, update: StatusUpdate | ErrorUpdate) -> None:
    if update.server != server:
        raise ValueError(f"server {server!r} and update.server {update.server!r} must be the same")


class ServerUpdate(Payload):
    """The data of every ``server_update`` event: ``{"node", "server", "update"}``."""

    node: str = Field(
        min_length=1,
        description="The node the server runs on: the coordinator sets it from the "
        "authenticated caller (the path's node id, proven), never from a body",
    )
    server: str = Field(min_length=1, description="The server the update is about")
    update: RemoteUpdate = Field(description="The seed-000 /update body, as validated")

    @model_validator(mode="after")
    def _check(self) -> ServerUpdate:
        _same_server(self.server, self.update)
        return self


class RelayedServerUpdate(Payload):
    """What a node relays as a ``server_update``'s data: :class:`ServerUpdate` without ``node``.

    A ``node`` (or ``node_id``) key in it is ignored: the coordinator names the node itself.
    """

    server: str = Field(min_length=1, description="The server the update is about")
    update: RemoteUpdate = Field(description="The seed-000 /update body")

    @model_validator(mode="after")
    def _check(self) -> RelayedServerUpdate:
        _same_server(self.server, self.update)
        return self

    def stamped(self, node: str) -> ServerUpdate:
        """The event's data, naming ``node`` (the authenticated caller)."""
        return ServerUpdate(node=node, server=self.server, update=self.update)


class RelayedEvent(Payload):
    """``POST /api/v1/nodes/{id}/events``: one event a node relays to ``/ws``."""

    type: Literal["server_update"] = Field(description="Nodes relay only server_update")
    timestamp: Timestamp = Field(default_factory=utcnow)
    data: RelayedServerUpdate


ScheduleEventType = Literal[
    "schedule_started", "schedule_task", "schedule_finished", "schedule_skipped"
]
"""A schedule's run on a node (the agent's own event kinds of the same names)."""


class ScheduleUpdate(Payload):
    """The data of every ``schedule_*`` event on ``/ws``: ``{"node", "server", "event"}``."""

    node: str = Field(min_length=1, description="Set by the coordinator from the caller")
    server: str = Field(min_length=1, description="The server the schedule belongs to")
    event: ScheduleEvent = Field(description="The schedule, the run's trigger and outcome")


class RelayedScheduleUpdate(Payload):
    """What a node relays as a ``schedule_*`` event's data: :class:`ScheduleUpdate` without
    ``node`` (the coordinator names the node itself)."""

    server: str = Field(min_length=1)
    event: ScheduleEvent

    def stamped(self, node: str) -> ScheduleUpdate:
        return ScheduleUpdate(node=node, server=self.server, event=self.event)


class RelayedScheduleEvent(Payload):
    """``POST /api/v1/nodes/{id}/events`` for a schedule's run (the agent relays each)."""

    type: ScheduleEventType
    timestamp: Timestamp = Field(default_factory=utcnow)
    data: RelayedScheduleUpdate
