"""One way for tests to wait: poll a condition until it holds, bounded, with a clear failure.

``wait_until(lambda: ..., timeout=10)`` (threads, processes, HTTP) and its awaitable twin
``until(...)`` (inside an event loop). The condition's last value is returned, so a test can
wait for a thing and use it: ``status = wait_until(lambda: ready(), ...)``. Never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["until", "wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 30.0, *, interval: float = 0.02, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy; return it. AssertionError after
    ``timeout`` seconds, naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or condition!r} (last {value!r})")
        time.sleep(interval)


async def until(
    condition: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.005, what: str = ""
) -> T:
    """:func:`wait_until` for code inside an event loop (yields to it while waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or condition!r} (last {value!r})")
        await asyncio.sleep(interval)
