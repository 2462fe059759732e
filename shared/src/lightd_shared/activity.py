"""The coordinator's activity log: who did what, when, to which node and server, and how it ended.

``GET /api/v1/activity`` answers an :class:`ActivityPage` of :class:`ActivityEntry`, newest
first; :class:`ActivityQuery` is its filter (the route's query string and the
``lightd-coordinator activity`` verb's flags), and :meth:`ActivityQuery.matches` the one
definition of what a filter lets through.

Two kinds of entry:

- ``request``: a mutating call of the API (``POST``/``PUT``/``PATCH``/``DELETE``) by a caller the
  coordinator identified; ``outcome`` is the HTTP status code (``"201"``, ``"404"``);
- ``command``: a dispatched command once it ended; ``outcome`` is its status (``success``,
  ``failed``, ``timeout``).

No secret is ever in an entry: no token, no body (so no container spec and no env value), no
query string, no command output. An exec's shell text is summarised by :func:`shell_summary`
(its program, length and SHA-256), never kept.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lightd_shared.base import Payload, Request
from lightd_shared.durations import parse_duration
from lightd_shared.timestamps import Timestamp, parse_timestamp, utcnow

__all__ = [
    "ACTIVITY_KINDS",
    "DEFAULT_ACTIVITY_LIMIT",
    "MAX_ACTIVITY_ID",
    "MAX_ACTIVITY_LIMIT",
    "ActivityEntry",
    "ActivityKind",
    "ActivityPage",
    "ActivityQuery",
    "ShellSummary",
    "parse_moment",
    "shell_summary",
]

ActivityKind = Literal["request", "command"]
ACTIVITY_KINDS: tuple[str, ...] = ("request", "command")
DEFAULT_ACTIVITY_LIMIT = 100
MAX_ACTIVITY_LIMIT = 1000
"""A page holds at most this many entries (``?limit=``)."""
MAX_ACTIVITY_ID = 2**63 - 1
"""Ids fit a signed 64-bit integer (sqlite's, Redis's counter): a larger ``before`` is a 422."""

_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]{1,64}$")
_OUTCOME = re.compile(r"^([1-5][0-9x][0-9x]|[a-z_]{1,32})$")
_TEXT = 255


class ShellSummary(Payload):
    """An exec command's shell text, summarised: enough to tell commands apart, no secret.

    ``program`` is the first word when it looks like a program name (``docker``,
    ``/usr/bin/env``), else ``"?"`` (``TOKEN=x cmd`` starts with an assignment); ``sha256`` of
    the whole text lets someone who holds a command check that it is the one that ran.
    """

    program: str
    length: int = Field(ge=0)
    sha256: str


def shell_summary(text: str | list[str]) -> ShellSummary:
    """The summary of a shell command (a string, or an argv list joined by spaces)."""
    joined = text if isinstance(text, str) else " ".join(text)
    words = joined.split(None, 1)
    first = words[0] if words else ""
    program = first if _PROGRAM.match(first) else "?"
    digest = hashlib.sha256(joined.encode("utf-8", errors="replace")).hexdigest()
    return ShellSummary(program=program, length=len(joined), sha256=digest)


class ActivityEntry(Payload):
    """One entry of the activity log."""

    id: int = Field(ge=1, description="Increasing; pass as ?before= to read older entries")
    time: Timestamp
    kind: ActivityKind
    action: str = Field(
        max_length=_TEXT,
        description="What was done: node.register, node.update, node.unregister, "
        "command.dispatch, command.fanout, container.create, container.start, ..., exec, "
        "token.issue, remote.config; a route without a name: 'METHOD /path/{template}'",
    )
    outcome: str = Field(max_length=64, description="HTTP status code, or the command's status")
    user: str | None = Field(
        default=None,
        max_length=_TEXT,
        description="Who: a command's own user field when it has one, else the token's subject",
    )
    subject: str | None = Field(
        default=None,
        max_length=_TEXT,
        description="The token's subject (static-token, agent, a JWT's sub, anonymous)",
    )
    node: str | None = Field(default=None, max_length=_TEXT)
    server: str | None = Field(default=None, max_length=_TEXT)
    method: str | None = Field(default=None, max_length=16)
    route: str | None = Field(default=None, max_length=_TEXT)
    request_id: str | None = Field(default=None, max_length=128)
    command_id: str | None = Field(default=None, max_length=_TEXT + 64)
    shell: ShellSummary | None = Field(
        default=None, description="An exec command's shell text, summarised (never the text)"
    )


class ActivityPage(Payload):
    entries: list[ActivityEntry]
    next_before: int | None = Field(
        default=None, description="Pass as ?before= for the next (older) page; null: no more"
    )


def parse_moment(value: Any, *, now: datetime | None = None) -> datetime:
    """An RFC 3339 timestamp, or a duration (``"1h"``) meaning that long before ``now``."""
    if isinstance(value, datetime):
        return parse_timestamp(value)
    if not isinstance(value, str) or not value:
        raise ValueError("expected an RFC 3339 timestamp or a duration such as '1h'")
    try:
        ago = parse_duration(value)
    except ValueError:
        try:
            return parse_timestamp(value)
        except ValueError:
            raise ValueError(
                f"{value[:64]!r} is neither an RFC 3339 timestamp nor a duration such as '1h'"
            ) from None
    try:
        return (now or utcnow()) - ago
    except OverflowError:
        raise ValueError(f"{value[:64]!r} ago is before the year 1") from None


class ActivityQuery(Request):
    """The filter and page of ``GET /api/v1/activity``; every filter given must hold."""

    node: str | None = Field(default=None, max_length=_TEXT)
    server: str | None = Field(default=None, max_length=_TEXT)
    user: str | None = Field(
        default=None, max_length=_TEXT, description="Matches the user or the token's subject"
    )
    action: str | None = Field(
        default=None, max_length=_TEXT, description="Exact, or a prefix ending in '*'"
    )
    kind: ActivityKind | None = None
    outcome: str | None = Field(
        default=None, description="Exact (success, 404), or a class of HTTP codes (4xx)"
    )
    since: datetime | None = Field(default=None, description="Timestamp, or a duration ago")
    until: datetime | None = Field(default=None, description="Timestamp, or a duration ago")
    before: int | None = Field(
        default=None, ge=1, le=MAX_ACTIVITY_ID, description="Only entries older than this id"
    )
    limit: int = Field(default=DEFAULT_ACTIVITY_LIMIT, ge=1, le=MAX_ACTIVITY_LIMIT)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _moment(cls, value: Any) -> Any:
        return None if value is None or value == "" else parse_moment(value)

    @field_validator("outcome")
    @classmethod
    def _outcome(cls, value: str | None) -> str | None:
        if value is not None and not _OUTCOME.match(value):
            raise ValueError(
                "expected a command status (success, failed, timeout), an HTTP status code "
                "(404) or a class of them (4xx)"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ActivityQuery:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be later than until")
        return self

    def matches(self, entry: ActivityEntry) -> bool:
        """Whether ``entry`` passes every filter (``before`` and ``limit`` are the page's)."""
        checks = (
            self.node is None or entry.node == self.node,
            self.server is None or entry.server == self.server,
            self.user is None or self.user in (entry.user, entry.subject),
            self.kind is None or entry.kind == self.kind,
            self.action is None or _action_matches(self.action, entry.action),
            self.outcome is None or _outcome_matches(self.outcome, entry.outcome),
            self.since is None or entry.time >= self.since,
            self.until is None or entry.time <= self.until,
            self.before is None or entry.id < self.before,
        )
        return all(checks)


def _action_matches(wanted: str, action: str) -> bool:
    if wanted.endswith("*"):
        return action.startswith(wanted[:-1])
    return action == wanted


def _outcome_matches(wanted: str, outcome: str) -> bool:
    if len(wanted) == 3 and "x" in wanted and len(outcome) == 3 and outcome.isdigit():
        return all(w in ("x", o) for w, o in zip(wanted, outcome, strict=True))
    return outcome == wanted
