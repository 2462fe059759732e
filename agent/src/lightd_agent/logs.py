"""Logging set-up: readable lines by default, one JSON object a line with ``logging.json``.

Messages say what happened and what to do. Tokens are never logged on purpose, and the shared
:class:`~lightd_shared.logformat.RedactingFilter` masks the agent's own secrets, any ``Bearer``
value and any ``token=`` query value should one reach a log line anyway.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from lightd_shared.logformat import (
    TEXT_FORMAT,
    JsonFormatter,
    RedactingFilter,
    quiet_health_checks,
    quiet_http_clients,
)

__all__ = ["JsonFormatter", "configure_logging"]


def configure_logging(
    level: str = "info", *, json_format: bool = False, secrets: Iterable[str] = ()
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    quiet_health_checks()
    quiet_http_clients(root.level)
