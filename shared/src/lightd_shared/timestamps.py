"""Timestamps on the wire: RFC 3339 in UTC with a ``Z`` suffix (``"2026-01-13T18:17:00Z"``).

Incoming values may carry any offset (they are converted to UTC); values without a time zone are
refused, since their meaning depends on the sender's clock settings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["Timestamp", "format_timestamp", "parse_timestamp", "utcnow"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def parse_timestamp(value: Any) -> datetime:
    """Read an RFC 3339 string (or an aware ``datetime``) into an aware UTC ``datetime``."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(
                f"invalid timestamp {value!r}; write RFC 3339 such as '2026-01-13T18:17:00Z'"
            ) from exc
    else:
        raise ValueError(f"a timestamp must be an RFC 3339 string, not {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone; add 'Z' for UTC")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # "9999-12-31T23:59:59-01:00" is a valid RFC 3339 text whose UTC time is past year 9999
        raise ValueError(
            f"timestamp {str(value)[:40]!r} is out of range in UTC; it must lie between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
        ) from None


def format_timestamp(value: datetime) -> str:
    """Write an aware ``datetime`` as RFC 3339 UTC with ``Z`` (microseconds only when present)."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-01-13T18:17:00Z"]}),
]
"""A timestamp field: ``"2026-01-13T18:17:00Z"`` on the wire, aware UTC ``datetime`` in Python."""
