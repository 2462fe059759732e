"""The log line format both programs write, and the filter that keeps secrets out of it.

Logs are an interface too (operators feed them to collectors), so there is one copy:

- :class:`JsonFormatter`: one JSON object a line, ``{"time", "level", "logger", "message",
  ...extra fields}``, ``time`` in RFC 3339 UTC with ``Z`` like every timestamp lightd writes,
  plus ``exception`` (the traceback) when there is one;
- :class:`RedactingFilter`: masks the configured secrets, any ``Bearer ...`` value and any
  ``token=`` query value in every record (message, extra fields, traceback and stack), before a
  line is written;
- :func:`quiet_health_checks`: answered ``GET /health`` requests (a compose or Docker health
  check every few seconds) are access lines at ``debug``, not ``info``; a failing one stays;
- :func:`quiet_http_clients`: httpx's own line per request made only at ``debug``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "TEXT_FORMAT",
    "HealthCheckFilter",
    "JsonFormatter",
    "RedactingFilter",
    "quiet_health_checks",
    "quiet_http_clients",
]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
"""The readable (non-JSON) line format."""

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_QUERY_TOKEN = re.compile(r"((?:^|[?&\s])(?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            # the cached text, which RedactingFilter has already masked
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class RedactingFilter(logging.Filter):
    """Masks known secrets, bearer tokens and ``token=`` query values in every record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        if text.isascii() and not self._may_hold_secret(text):
            return text
        return self._mask(text)

    def _may_hold_secret(self, text: str) -> bool:
        """Whether :meth:`_mask` could change an ASCII ``text``: each pattern needs its word.

        Most lines hold no secret, and three substitutions on every message and extra field
        were about a third of a log line's cost (a registration writes two lines). Only
        ASCII text is pre-checked: ``re.IGNORECASE`` folds a few non-ASCII letters (the
        Kelvin sign matches ``k``), which ``str.lower`` alone would not promise.
        """
        lowered = text.lower()
        if "token=" in lowered or "bearer" in lowered:
            return True
        return any(secret in text for secret in self._secrets)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _QUERY_TOKEN.sub(r"\1***", text)
        return _BEARER.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._clean(value))
        if record.exc_info and not record.exc_text:
            # a traceback quotes messages and locals' reprs (a URL with ?token=, a header):
            # format it here, masked, and leave the masked text where every formatter looks
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


class HealthCheckFilter(logging.Filter):
    """On ``uvicorn.access``: a ``GET /health`` answered 2xx becomes a ``debug`` line.

    uvicorn logs every request at ``info`` with the args ``(client, method, path, http version,
    status)``; health checks every few seconds would be most of the log. Dropped unless the
    root logger is at ``debug``; a health check that fails (``503``) keeps its ``info`` line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _, method, path, _, status = args
        if method != "GET" or str(path).split("?", 1)[0] != "/health":
            return True
        if not isinstance(status, int) or not 200 <= status < 300:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_health_checks() -> None:
    """Install :class:`HealthCheckFilter` on ``uvicorn.access`` (once, however often called)."""
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, HealthCheckFilter)]:
        access.removeFilter(old)
    access.addFilter(HealthCheckFilter())


def quiet_http_clients(root_level: int) -> None:
    """httpx logs every request it makes at info (each remote update and heartbeat of the
    agent, each command the coordinator sends to an agent): a formatted, redacted line per
    request on the event loop, about 3 % of a dispatched command's CPU. Both programs log
    their failed requests themselves and a command's outcome in one line of their own, so
    the per-request lines are kept for debugging only: shown when ``root_level`` is debug."""
    quiet = logging.DEBUG if root_level <= logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
