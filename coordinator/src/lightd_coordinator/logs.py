"""Logging: one JSON object per line (``logging.format: json``) or readable text; never secrets.

Everything, uvicorn's own loggers included, goes through the root logger configured here.
A filter on the handler masks the configured secrets wherever they appear, and any
``token=...`` query parameter (``/ws?token=`` in access logs), before a line is written.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from lightd_coordinator.config import LoggingSettings

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_QUERY_TOKEN = re.compile(r"((?:^|[?&\s])(?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


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
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingFilter(logging.Filter):
    """Masks known secrets, bearer tokens and ``token=`` query values in every record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
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
        return True


def _stream(output: str) -> TextIO | None:
    if output == "stdout":
        return sys.stdout
    if output == "stderr":
        return sys.stderr
    return None


def _prune(path: Path, max_age_days: int) -> None:
    """Remove rotated files (``name.1``, ``name.2`` ...) older than ``max_age`` days."""
    if max_age_days <= 0 or not path.parent.exists():
        return
    cutoff = time.time() - max_age_days * 86400
    for old in path.parent.glob(path.name + ".*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue


def configure_logging(settings: LoggingSettings, *, secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger according to the ``logging`` section."""
    stream = _stream(settings.output)
    handler: logging.Handler
    if stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        path = Path(settings.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        _prune(path, settings.max_age)
        handler = logging.handlers.RotatingFileHandler(
            path,
            maxBytes=settings.max_size * 1024 * 1024,
            backupCount=settings.max_backups,
            encoding="utf-8",
        )
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
