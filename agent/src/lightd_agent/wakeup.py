"""Waking a loop's waiter from any thread (Docker's event reader runs in a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["call_threadsafe", "set_event_threadsafe"]


def set_event_threadsafe(loop: asyncio.AbstractEventLoop | None, event: asyncio.Event) -> None:
    """Set ``event``, which belongs to ``loop``, from that loop or from another thread.

    Does nothing before the loop is known or after it closed.
    """
    call_threadsafe(loop, event.set)


def call_threadsafe(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], object]) -> None:
    """Run ``callback`` on ``loop``: now when called from it, else soon from the loop's thread.

    Durable listeners are called from the servers' writer thread; this is how one touches what
    belongs to the loop (tasks, events). Does nothing before the loop is known or after it closed.
    """
    if loop is None or loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback()
    else:
        loop.call_soon_threadsafe(callback)
