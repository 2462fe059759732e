"""What every value read off the wire must be, before any model looks at its fields.

JSON can carry things Python's ``json`` module accepts but nothing downstream survives:

- **unencodable text**: ``"\\ud800"`` (a lone UTF-16 surrogate) decodes to a ``str`` that
  cannot be written as UTF-8, so every later answer, event or log line that includes it fails
  (a stored node name with one made ``GET /api/v1/nodes`` a 500 for everyone);
- **deep nesting**: ``[[[[...]]]]`` 900 levels deep cannot be serialised again (Python's
  recursion limit), so an event holding it breaks the event stream;
- **sheer size** inside a free-form field: one ``data`` object of a million keys.

:func:`check_wire_value` refuses all three in one iterative walk (no recursion, so the check
itself cannot overflow); :class:`~lightd_shared.base.Payload` and
:class:`~lightd_shared.base.Request` run it on every body, so both programs refuse such input at
the edge with a 422. :func:`safe_text` makes any text fit to put into an answer (a 422 message
that quotes the input must itself be encodable).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "WireValueError",
    "check_wire_value",
    "encodable",
    "safe_text",
]

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in a body (the body itself is depth 1)."""

MAX_VALUES = 20_000
"""Most values (keys, strings, numbers, objects, arrays) in one body."""


class WireValueError(ValueError):
    """A body holds text that is no valid Unicode, is nested too deep, or has too many values."""


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_text(text: str) -> str:
    """``text`` with every unencodable character written as a ``\\udXXX`` escape."""
    if encodable(text):
        return text
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _where(path: tuple[str | int, ...]) -> str:
    parts = [safe_text(str(part))[:64] for part in path]
    if len(parts) > 6:
        parts = [*parts[:3], "…", *parts[-2:]]
    return ".".join(parts) or "body"


def check_wire_value(
    value: Any, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES
) -> None:
    """Raise :class:`WireValueError` unless ``value`` (parsed JSON) is fit to keep and echo.

    Its message names where the problem is (``labels.<key>``), escaped so it can be sent.
    """
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    seen = 0
    while stack:
        item, depth, path = stack.pop()
        seen += 1
        if seen > max_values:
            raise WireValueError(f"the body holds more than {max_values} values")
        if isinstance(item, str):
            if not encodable(item):
                raise WireValueError(
                    f"{_where(path)}: text holds an unpaired surrogate "
                    f"({safe_text(item)[:80]!s}), which is not valid Unicode"
                )
        elif isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise WireValueError(f"{_where(path)}: nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str) and not encodable(key):
                        raise WireValueError(
                            f"{_where(path)}: a key holds an unpaired surrogate "
                            f"({safe_text(key)[:80]!s}), which is not valid Unicode"
                        )
                    stack.append((inner, depth + 1, (*path, key)))
            else:
                stack.extend((inner, depth + 1, (*path, i)) for i, inner in enumerate(item))
