"""The scheduler's clock: what time it is, and a sleep until a given time.

Two implementations side by side, as httpx keeps its transports: :class:`SystemClock` (the
wall clock, UTC) for the running agent and :class:`ManualClock` (time moves only when told)
for tests, which advance it at once instead of waiting on real minutes. Neither is a patch:
the agent is built with one or the other (``create_app(config, clock=...)``).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]

_MAX_NAP = 60.0
"""The system clock looks at the wall clock again at least this often (seconds), so a step
of the host's clock (NTP, a suspended VM) delays a run by at most a minute."""


class Clock(Protocol):
    """What the scheduler and the task runner know of time."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once :meth:`now` is at or past ``when`` (at once if it already is)."""
        ...


class SystemClock:
    """The host's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (left := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(left, _MAX_NAP))


class ManualClock:
    """A clock that moves only through :meth:`advance` or :meth:`set`, from any thread.

    Sleepers waiting on an event loop (an agent served in a thread) are woken on that loop, so
    a test thread can drive an agent's scheduler. :meth:`sleepers` shows who waits for when,
    so a test can wait until the scheduler is asleep before moving time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._lock = threading.Lock()
        self._sleepers: list[tuple[datetime, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    async def sleep_until(self, when: datetime) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (when, loop, future)
        with self._lock:
            if when <= self._now:
                future.set_result(None)
            else:
                self._sleepers.append(entry)
        try:
            await future
        finally:
            with self._lock:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)

    def sleepers(self) -> list[datetime]:
        """When each sleeper wants to wake, soonest first."""
        with self._lock:
            return sorted(when for when, _, _ in self._sleepers)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward by ``delta`` (seconds or a timedelta); wake whoever is due."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("a clock only moves forward")
        with self._lock:
            target = self._now + step
        return self.set(target)

    def set(self, when: datetime) -> datetime:
        """Move time forward to ``when``; wake whoever is due."""
        with self._lock:
            if when < self._now:
                raise ValueError("a clock only moves forward")
            self._now = when
            due = [entry for entry in self._sleepers if entry[0] <= when]
            for entry in due:
                self._sleepers.remove(entry)
        for _, loop, future in due:
            loop.call_soon_threadsafe(_wake, future)
        return when


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
