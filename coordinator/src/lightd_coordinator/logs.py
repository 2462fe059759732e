"""Logging: one JSON object per line (``logging.format: json``) or readable text; never secrets.

Everything, uvicorn's own loggers included, goes through the root logger configured here.
A filter on the handler masks the configured secrets wherever they appear, and any
``token=...`` query parameter (``/ws?token=`` in access logs), before a line is written.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from lightd_coordinator.config import ConfigError, LoggingSettings
from lightd_shared.logformat import (
    TEXT_FORMAT,
    JsonFormatter,
    RedactingFilter,
    quiet_health_checks,
    quiet_http_clients,
)

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging"]


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


def _file_handler(settings: LoggingSettings) -> logging.Handler:
    """The rotating file handler; a file that cannot be opened is a :class:`ConfigError`."""
    path = Path(settings.output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _prune(path, settings.max_age)
        return logging.handlers.RotatingFileHandler(
            path,
            maxBytes=settings.max_size * 1024 * 1024,
            backupCount=settings.max_backups,
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(
            f"logging.output {settings.output!r} cannot be opened for writing: "
            f"{exc.strerror or exc}; point it at a writable file, or use 'stdout' or 'stderr'"
        ) from None


def configure_logging(settings: LoggingSettings, *, secrets: Iterable[str] = ()) -> None:
    """Install one handler on the root logger according to the ``logging`` section.

    Raises :class:`ConfigError` (one message, before anything starts) if ``logging.output``
    is a file that cannot be opened.
    """
    stream = _stream(settings.output)
    handler: logging.Handler
    if stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        handler = _file_handler(settings)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
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
    quiet_health_checks()
    quiet_http_clients(root.level)
