"""The SSE envelope (seed ``003``): every message on ``/ws`` carries ``{type, timestamp, data}``.

The SSE ``id:`` line carries the event's sequence number; it is not part of the envelope.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import Field

from lightd_shared.base import Payload
from lightd_shared.timestamps import Timestamp, utcnow

__all__ = ["EVENT_TYPES", "Event", "EventType"]

EventType = Literal[
    "initial_state",
    "node_registered",
    "node_updated",
    "node_unregistered",
    "command_result",
    "node_inactive",
    "server_update",
]
"""Event types the coordinator emits: the seed's five, then lightd's own."""

EVENT_TYPES: tuple[str, ...] = typing.get_args(EventType)


class Event(Payload):
    """``{"type": ..., "timestamp": ..., "data": ...}``.

    ``type`` is read as any lower-case word so that a client keeps working when a newer
    coordinator adds a type; producers use :data:`EventType`.
    """

    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    timestamp: Timestamp = Field(default_factory=utcnow)
    data: Any = None
