"""Remote-sync contract (seed ``000``): what the agent sends to a remote management server.

Bodies, exactly as the seed writes them::

    POST {url}/update   {"event": "update", "server": "my-server-001", "status": "installing"}
    POST {url}/update   {"event": "update", "server": "my-server-001",
                         "error": "failed", "data": "Docker container creation failed: ..."}
    answer              {"success": true}
    GET  {url}/health   answer {"status": 200, "endpoint": "active"}
    GET/POST {url}/config   {"containers": [...], "settings": {...}}

and the agent's ``config.json`` ``remote`` block ``{enabled, url, token}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Discriminator, Field, HttpUrl, StringConstraints, Tag, model_validator

from lightd_shared.base import Payload, Request
from lightd_shared.durations import PositiveDuration, parse_duration
from lightd_shared.timestamps import Timestamp
from lightd_shared.tokens import TOKEN_PATTERN

__all__ = [
    "MAX_ERROR_DATA_LENGTH",
    "MAX_ERROR_LENGTH",
    "RUNTIME_STATUSES",
    "SEED_STATUSES",
    "AppliedContainer",
    "ConfigDocument",
    "ConfigPull",
    "DeadLetter",
    "DeadLetterList",
    "ErrorUpdate",
    "MessageResponse",
    "RemoteConfigView",
    "RemoteHealth",
    "RemoteSettings",
    "RemoteStatus",
    "RemoteSyncHealth",
    "RemoteToken",
    "RemoteUpdate",
    "StatusUpdate",
    "UpdateAck",
    "mask_url",
    "strip_userinfo",
    "url_userinfo",
]

MAX_ERROR_LENGTH = 4096
MAX_ERROR_DATA_LENGTH = 65536
"""Bounds of an error update's ``error`` and ``data`` (the agent cuts longer ones)."""

RemoteStatus = Literal["installing", "ready", "failed", "running", "stopped", "crashed"]
"""``/update`` status values: the seed's three, then the runtime ones operators may opt into."""

SEED_STATUSES: frozenset[str] = frozenset({"installing", "ready", "failed"})
RUNTIME_STATUSES: frozenset[str] = frozenset({"running", "stopped", "crashed"})

RemoteToken = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
"""A remote token: ``lightd_`` then hex digits (``lightd_ad2f7fc49ed640429c450e14ed07c8d5``)."""


def url_userinfo(url: object) -> str | None:
    """The ``user:password`` part of a URL (as written), or ``None`` if it has none."""
    netloc = urlsplit(str(url)).netloc
    userinfo, at, _ = netloc.rpartition("@")
    return userinfo if at and userinfo else None


def mask_url(url: object) -> str:
    """``url`` fit to log or show: its user info (``user:password@``) becomes ``***@``.

    ``https://user:pass@panel.example/api`` -> ``https://***@panel.example/api``. The user name
    goes too: in a URL it is often a token itself.
    """
    return _replace_userinfo(str(url), "***@")


def strip_userinfo(url: object) -> str:
    """``url`` without its user info: ``https://user:pass@host/api`` -> ``https://host/api``."""
    return _replace_userinfo(str(url), "")


def _replace_userinfo(text: str, replacement: str) -> str:
    if url_userinfo(text) is None:
        return text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{replacement}{host}"))


class StatusUpdate(Payload):
    """``{"event": "update", "server": ID, "status": STATUS}``."""

    event: Literal["update"] = "update"
    server: str = Field(min_length=1, max_length=255)
    status: RemoteStatus


class ErrorUpdate(Payload):
    """``{"event": "update", "server": ID, "error": E, "data": DETAILS}``.

    ``error`` is ``failed``, ``timeout`` or a custom message; ``data`` says what happened.
    """

    event: Literal["update"] = "update"
    server: str = Field(min_length=1, max_length=255)
    error: str = Field(min_length=1, max_length=MAX_ERROR_LENGTH)
    data: str = Field(default="", max_length=MAX_ERROR_DATA_LENGTH)


def _update_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "error" if "error" in value else "status"
    if isinstance(value, ErrorUpdate):
        return "error"
    if isinstance(value, StatusUpdate):
        return "status"
    return None


RemoteUpdate = Annotated[
    Annotated[StatusUpdate, Tag("status")] | Annotated[ErrorUpdate, Tag("error")],
    Discriminator(_update_kind),
]
"""Either ``/update`` body: an error body when it has ``error``, else a status body."""


class UpdateAck(Payload):
    """The remote's answer to ``/update``: ``{"success": true}``."""

    success: bool


class RemoteHealth(Payload):
    """The remote's answer to ``/health``: ``{"status": 200, "endpoint": "active"}``."""

    status: int = 200
    endpoint: str = "active"


class ConfigDocument(Payload):
    """``GET/POST {url}/config``: ``{"containers": [...], "settings": {...}}``.

    The containers are container specs (see ``lightd_shared.containers``); they are kept as
    plain objects here so that a remote of another version never breaks the exchange, and are
    validated one by one, with a message per container, when the agent applies them.
    """

    containers: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    settings: dict[str, Any] = Field(default_factory=dict, max_length=1000)


class RemoteSettings(Request):
    """The ``remote`` block of the agent's ``config.json``.

    ``enabled``, ``url`` and ``token`` are the seed's; the rest are lightd's extensions with the
    seed's values as defaults (10 s timeout, 30 s health checks, only the seed's statuses sent).
    """

    enabled: bool = False
    url: HttpUrl | None = Field(
        default=None, description="Remote API base URL; paths are appended: {url}/update"
    )
    token: RemoteToken | None = Field(
        default=None, description="Bearer token sent to the remote (must match the remote's)"
    )
    timeout: PositiveDuration = Field(
        default=parse_duration("10s"), description="Per-request timeout"
    )
    health_interval: PositiveDuration = Field(
        default=parse_duration("30s"), description="How often GET {url}/health runs"
    )
    events: Literal["seed", "all"] = Field(
        default="seed",
        description="'seed': installing/ready/failed only; 'all': also running/stopped/crashed",
    )
    outbox_limit: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Most undelivered updates kept in the outbox; at the bound nothing is dropped, "
            "new lifecycle actions are refused (503) until it drains"
        ),
    )
    retry_max_delay: PositiveDuration = Field(
        default=parse_duration("5m"),
        description="Longest wait between two delivery attempts of one update (backoff cap)",
    )

    @model_validator(mode="after")
    def _enabled_needs_url_and_token(self) -> Self:
        if self.enabled:
            missing = [name for name in ("url", "token") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"remote is enabled but {' and '.join(missing)} is not set")
        return self

    def shown_url(self) -> str | None:
        """``url`` for logs and views, as configured: any ``user:password@`` in it masked
        (:func:`mask_url`), and without the ``/`` URL parsing adds to a bare host
        (``http://panel:3000`` stays ``http://panel:3000``)."""
        if self.url is None:
            return None
        shown = mask_url(self.url)
        parts = urlsplit(shown)
        if parts.path == "/" and not parts.query and not parts.fragment:
            shown = shown.removesuffix("/")
        return shown

    def endpoint(self, path: str) -> str:
        """``{url}/{path}`` with the url's own path kept (``https://x/api`` -> ``https://x/api/update``)."""
        if self.url is None:
            raise ValueError("remote url is not set")
        return str(self.url).rstrip("/") + "/" + path.lstrip("/")


class RemoteConfigRemote(Payload):
    """The ``remote`` part of ``GET /remote/config`` (token masked)."""

    enabled: bool
    url: str | None = None
    token: str | None = None


class RemoteConfigView(Payload):
    """The agent's ``GET /remote/config`` answer: ``{"version", "server", "remote"}``."""

    version: str
    server: dict[str, Any] = Field(default_factory=dict)
    remote: RemoteConfigRemote


class MessageResponse(Payload):
    """A one-line answer such as ``{"message": "Configuration reloaded successfully"}``."""

    message: str


class RemoteSyncHealth(Payload):
    """The remote-sync part of the agent's ``/health`` (and ``lightd status``).

    ``remote`` is ``ok``/``failed`` after a health check, ``unknown`` before the first one and
    ``disabled`` when remote sync is off. ``outbox_full`` means new lifecycle actions are
    being refused with 503 until the outbox drains. ``outbox_unwritten`` counts updates the
    outbox could not take yet (kept in memory, retried). ``degraded_reason`` says why remote
    sync makes the agent ``degraded`` (outbox full or unwritable), ``None`` when it does not.
    """

    enabled: bool
    remote: Literal["ok", "failed", "unknown", "disabled"]
    last_check: Timestamp | None = None
    last_error: str | None = None
    outbox_depth: int = 0
    outbox_limit: int = 0
    outbox_full: bool = False
    oldest_undelivered_age_seconds: float | None = None
    dead_letters: int = 0
    outbox_unwritten: int = 0
    degraded_reason: str | None = None


class DeadLetter(Payload):
    """An update the remote refused for good (a 4xx other than 401/403/408/429).

    Kept with the body, headers and the remote's answer so an operator can fix the cause and
    replay it (``POST /remote/dead-letters/{id}/replay``) with the same ``Idempotency-Key``.
    """

    id: int
    server: str
    sequence: int
    idempotency_key: str
    body: dict[str, Any]
    created_at: Timestamp
    failed_at: Timestamp
    attempts: int
    status_code: int | None = None
    reason: str


class DeadLetterList(Payload):
    """``GET /remote/dead-letters``."""

    dead_letters: list[DeadLetter] = Field(default_factory=list)


class AppliedContainer(Payload):
    """What ``POST /remote/config/pull?apply=true`` did with one pulled container.

    ``created``: installing now; ``exists``: a server with that id is already here (left as
    is); ``invalid``: not a valid container spec (``detail`` names the field); ``refused``: the
    agent refused it (policy, port in use, Docker down, outbox full; ``detail`` says which).
    """

    id: str | None = None
    outcome: Literal["created", "exists", "invalid", "refused"]
    detail: str = ""


class ConfigPull(Payload):
    """``POST /remote/config/pull``: the document pulled and, with ``apply``, what was done."""

    config: ConfigDocument
    applied: list[AppliedContainer] = Field(default_factory=list)
