"""Waking a loop's waiter from any thread (Docker's event reader runs in a thread)."""

from __future__ import annotations

import asyncio

__all__ = ["set_event_threadsafe"]


def set_event_threadsafe(loop: asyncio.AbstractEventLoop | None, event: asyncio.Event) -> None:
    """Set ``event``, which belongs to ``loop``, from that loop or from another thread.

    Does nothing before the loop is known or after it closed.
    """
    if loop is None or loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    else:
        loop.call_soon_threadsafe(event.set)
