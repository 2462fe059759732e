"""Durations in the seeds' form: ``"30s"``, ``"24h"``, ``"100ms"``, ``"2h30m15s"``, ``"1.5s"``.

One parser and one formatter, used by every config file and every body. The grammar is Go's
``time.ParseDuration`` (which the seeds' original server used) without negative values:
a sequence of ``<number><unit>`` with units ``h``, ``m``, ``s``, ``ms``, ``us``/``µs``, ``ns``.

``format_duration`` writes the shortest canonical form (``"24h"``, not ``"24h0m0s"``), and
``parse_duration(format_duration(d)) == d`` for every non-negative ``timedelta`` (to the
microsecond, Python's resolution).

Use the :data:`Duration` annotated type in models: it accepts such a string (or a ``timedelta``)
and serialises back to the string. :data:`PositiveDuration` is the same but refuses ``"0s"``: for
intervals and timeouts, where zero means a busy loop or a call that always times out.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "Duration",
    "DurationError",
    "PositiveDuration",
    "format_duration",
    "parse_duration",
]

# Microseconds per unit. Nanoseconds are accepted and rounded to the microsecond.
_UNITS: dict[str, Decimal] = {
    "h": Decimal(3_600_000_000),
    "m": Decimal(60_000_000),
    "s": Decimal(1_000_000),
    "ms": Decimal(1_000),
    "us": Decimal(1),
    "µs": Decimal(1),
    "μs": Decimal(1),
    "ns": Decimal("0.001"),
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)")
_EXAMPLES = "write it like '30s', '100ms', '1m30s' or '2h30m15s'"


class DurationError(ValueError):
    """A duration string that does not follow the seeds' form."""


def parse_duration(text: str) -> timedelta:
    """Parse ``"2h30m15s"``-style text into a ``timedelta``; raise :class:`DurationError`."""
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string ({_EXAMPLES}), not {type(text).__name__}")
    s = text.strip()
    if not s:
        raise DurationError(f"empty duration; {_EXAMPLES}")
    if s == "0":
        return timedelta(0)
    if s.startswith("-"):
        raise DurationError(f"negative duration {text!r}: durations must be zero or more")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        raise DurationError(f"duration {text!r} has no unit; {_EXAMPLES}")
    total = Decimal(0)
    pos = 0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        try:
            total += Decimal(match.group(1)) * _UNITS[match.group(2)]
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
            raise DurationError(f"invalid number in duration {text!r}") from exc
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise DurationError(f"invalid duration {text!r}; {_EXAMPLES}")
    micros = int(total.to_integral_value())
    if micros > timedelta.max // timedelta(microseconds=1):
        raise DurationError(f"duration {text!r} is too long")
    return timedelta(microseconds=micros)


def _trim(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def format_duration(value: timedelta) -> str:
    """Write a ``timedelta`` in the shortest canonical form: ``24h``, ``1m30s``, ``100ms``."""
    micros = value // timedelta(microseconds=1)
    if micros < 0:
        raise DurationError("negative durations cannot be written")
    if micros == 0:
        return "0s"
    if micros < 1_000_000:
        if micros % 1000 == 0:
            return f"{micros // 1000}ms"
        if micros < 1000:
            return f"{micros}us"
        return f"{_trim(Decimal(micros) / 1000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if rest:
        parts.append(f"{_trim(Decimal(rest) / 1_000_000)}s")
    return "".join(parts)


def _validate(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise DurationError("durations must be zero or more")
        return value
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+(\.\d*)?(h|m|s|ms|us|µs|ns))+$|^0$",
            "examples": ["30s", "100ms", "2h30m15s"],
        }
    ),
]
"""A duration field: ``"30s"`` on the wire, ``timedelta`` in Python."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise DurationError("must be greater than 0s (write it like '30s' or '100ms')")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A duration that must be longer than zero: intervals and timeouts (``"0s"`` is refused)."""
