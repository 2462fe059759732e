"""The agent's lifecycle event bus: one place every lifecycle change goes through.

Lifecycle code (install, power actions, Docker's event stream) calls :meth:`EventBus.publish`.
The bus then, in this order:

1. calls every *durable listener* synchronously (the remote-sync outbox writes the update to
   SQLite here, so an event that was published survives a crash right after); the servers'
   machine does this step in its writer thread, a group of events at a time
   (:meth:`EventBus.persist`), and the next one on the loop once they are durable;
2. hands the event to every live subscriber (the ``GET /events`` SSE streams) through a bounded
   queue; a subscriber that falls behind is dropped, never the event for the others.

Before starting an action, API code asks :meth:`EventBus.refusal`: a *gate* (the outbox at its
bound) may refuse new lifecycle actions with a reason, answered as 503.

Event kinds are the remote-sync seed's lifecycle names (``Started``, ``CreatingContainer``,
``Ready``, ``Error``, ``ReinstallStarted``) plus runtime ones the seed lacks, and the backups'
(``backup_started`` ... ``restore_failed``, :mod:`lightd_agent.backups`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from lightd_shared.timestamps import utcnow

__all__ = [
    "SEED_KINDS",
    "DurableListener",
    "EventBus",
    "Gate",
    "LifecycleEvent",
    "LifecycleKind",
    "Subscription",
]

log = logging.getLogger(__name__)

LifecycleKind = Literal[
    "Started",
    "CreatingContainer",
    "Ready",
    "Error",
    "ReinstallStarted",
    "Running",
    "Stopped",
    "Crashed",
    "Deleted",
    "backup_started",
    "backup_progress",
    "backup_completed",
    "backup_failed",
    "restore_started",
    "restore_progress",
    "restore_completed",
    "restore_failed",
    # a schedule's runs (lightd_agent.schedules): data is a lightd_shared.schedules.ScheduleEvent
    "schedule_started",
    "schedule_task",
    "schedule_finished",
    "schedule_skipped",
]
SEED_KINDS: frozenset[str] = frozenset(
    {"Started", "CreatingContainer", "Ready", "Error", "ReinstallStarted"}
)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle change of one server.

    ``error``/``data`` are set for ``Error`` (``error`` is ``failed``, ``timeout`` or a custom
    message; ``data`` says what happened in words an operator can act on). ``state`` is the
    server's state word after the change (``installing``, ``ready``, ``running``, ...).

    Its fields are those of the wire's :class:`lightd_shared.containers.ServerEvent`, which is
    read from it by attribute; ``tests/agent/test_field_lists.py`` checks that they agree.
    """

    server: str
    kind: LifecycleKind
    state: str
    error: str | None = None
    data: str | None = None
    exit_code: int | None = None
    timestamp: datetime = field(default_factory=utcnow)
    id: int = 0  # assigned by the bus: increasing by one per event, and across restarts


class DurableListener(Protocol):
    """Called synchronously for every event before anyone else sees it. Must not block long.

    The servers' events reach it from the durable writer's thread (``servers/writer.py``), not
    from the event loop: a listener that touches asyncio objects hands over with
    ``call_soon_threadsafe`` (``wakeup.set_event_threadsafe``)."""

    def __call__(self, event: LifecycleEvent) -> None: ...


class Gate(Protocol):
    """Says why new lifecycle actions must be refused right now, or ``None``."""

    def refusal(self) -> str | None: ...


class Subscription:
    """A live view of the bus for one consumer (an SSE stream)."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[LifecycleEvent | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = False

    def _offer(self, event: LifecycleEvent) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            log.warning("event subscriber fell behind and was disconnected; it can resume")
            self._bus.unsubscribe(self)

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[LifecycleEvent]:
        while not self.dropped:
            event = await self.queue.get()
            if event is None:
                return
            yield event


class EventBus:
    """Fan-out of lifecycle events to durable listeners, then live subscribers."""

    def __init__(self, history: int = 1000, subscriber_queue: int = 1000) -> None:
        # Ids start at the clock in microseconds, so they keep growing across restarts: a
        # client resuming with an id from the previous process gets what this one kept, not
        # nothing (ids from 1 would all be below its Last-Event-ID). About 1.7e15: an int64,
        # and exact in a JavaScript number.
        self._ids = itertools.count(time.time_ns() // 1000)
        # Events numbered but not yet handed to the durable listeners (the writer thread's
        # queue): see :meth:`unpersisted`.
        self._count_lock = threading.Lock()
        self._numbered = 0
        self._persisted = 0
        self._ordered: Callable[[LifecycleEvent], None] | None = None
        self._listeners: list[DurableListener] = []
        self._batch_listeners: list[Callable[[list[LifecycleEvent]], None]] = []
        self._gates: list[Gate] = []
        self._subscribers: set[Subscription] = set()
        self._history: deque[LifecycleEvent] = deque(maxlen=history)
        self._subscriber_queue = subscriber_queue

    def add_listener(self, listener: DurableListener) -> Callable[[], None]:
        """Register a durable listener; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add_batch_listener(
        self, listener: Callable[[list[LifecycleEvent]], None]
    ) -> Callable[[], None]:
        """Register a durable listener that takes a group of events at once (one commit)."""
        self._batch_listeners.append(listener)
        return lambda: self._batch_listeners.remove(listener)

    def add_gate(self, gate: Gate) -> Callable[[], None]:
        self._gates.append(gate)
        return lambda: self._gates.remove(gate)

    def refusal(self) -> str | None:
        """Why new lifecycle actions are refused now (answer 503 with it), or ``None``."""
        for gate in self._gates:
            reason = gate.refusal()
            if reason:
                return reason
        return None

    def publish(self, event: LifecycleEvent) -> LifecycleEvent:
        """Number the event, persist it through the durable listeners, then fan it out.

        Synchronous on purpose: when it returns, every durable listener has the event. The
        servers' machine goes through :meth:`number`, :meth:`persist` (in its writer thread,
        a group at a time) and :meth:`fan_out` instead, in the same order; once it is set up
        (:meth:`set_ordered_path`) this goes through the same writer, so that it keeps that
        order too (the fan-out then happens on the writer's event loop, right after).
        """
        numbered = self.number(event)
        if self._ordered is not None:
            self._ordered(numbered)
            return numbered
        self.persist([numbered])
        self.fan_out(numbered)
        return numbered

    def set_ordered_path(self, path: Callable[[LifecycleEvent], None] | None) -> None:
        """Route :meth:`publish` through ``path`` (the servers' writer): it must persist the
        event before it returns, after every event numbered before it, and fan it out in
        that same order. Without it an event published here while the writer still held
        earlier ones would reach the outboxes and the subscribers ahead of them (a resuming
        ``Last-Event-ID`` would then skip those)."""
        self._ordered = path

    def number(self, event: LifecycleEvent) -> LifecycleEvent:
        """The event with its id: increasing by one per event, in the order of the calls.

        Every numbered event must then go through :meth:`persist` (the servers' machine hands
        each to its writer at once), or :meth:`unpersisted` never comes back to zero.
        """
        with self._count_lock:
            self._numbered += 1
            return replace(event, id=next(self._ids))

    def persist(self, events: list[LifecycleEvent]) -> None:
        """Hand numbered events to every durable listener (any thread, in order)."""
        try:
            for batch in list(self._batch_listeners):
                batch(events)
            for listener in list(self._listeners):
                for event in events:
                    listener(event)
        finally:
            with self._count_lock:
                self._persisted += len(events)

    def unpersisted(self) -> int:
        """Events numbered but not yet through :meth:`persist`: changes already visible in
        the servers' state whose updates are still on their way to the outboxes.

        Read it *before* an outbox's depth: an event counted neither here nor there can then
        only be one already delivered, so ``unpersisted() + depth`` is never short of what is
        undelivered (it can be one group over, briefly).
        """
        with self._count_lock:
            return self._numbered - self._persisted

    def fan_out(self, event: LifecycleEvent) -> None:
        """Keep a persisted event in the history and offer it to the live subscribers."""
        self._history.append(event)
        for subscription in list(self._subscribers):
            subscription._offer(event)

    def subscribe(self, after: int | None = None) -> Subscription:
        """Subscribe; with ``after``, first replay kept events with a greater id."""
        subscription = Subscription(self, self._subscriber_queue)
        if after is not None:
            for event in self._history:
                if event.id > after:
                    subscription._offer(event)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.discard(subscription)
            try:
                subscription.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass

    def close(self) -> None:
        for subscription in list(self._subscribers):
            self.unsubscribe(subscription)
