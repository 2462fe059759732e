"""The coordinator's log levels: httpx's own line per request made only at debug."""

from __future__ import annotations

import logging

import pytest

from lightd_coordinator.config import LoggingSettings
from lightd_coordinator.logs import configure_logging


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "expected"), [("info", "WARNING"), ("debug", "DEBUG")])
def test_httpx_request_lines_only_at_debug(level: str, expected: str) -> None:
    # each command sent to an agent was an info line of httpx's beside the coordinator's own
    configure_logging(LoggingSettings(level=level, format="text"))  # type: ignore[arg-type]
    for name in ("httpx", "httpcore"):
        assert logging.getLevelName(logging.getLogger(name).level) == expected
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO) == (level == "debug")
    assert logging.getLogger("lightd_coordinator").isEnabledFor(logging.INFO)
