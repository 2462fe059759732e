"""The SSE envelope (seed ``003``): every message on ``/ws`` carries ``{type, timestamp, data}``.

The SSE ``id:`` line carries the event's sequence number; it is not part of the envelope.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import Field

from lightd_shared.base import Payload
from lightd_shared.timestamps import Timestamp, utcnow

__all__ = ["EVENT_ID_PATTERN", "EVENT_TYPES", "Event", "EventType", "parse_event_id"]

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
