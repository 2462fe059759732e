"""The event hub behind ``/ws``: numbered events, a bounded history, one bounded queue per client.

- Every published event gets the next integer id from the registry (so ids keep increasing
  across restarts when the registry persists) and goes into a ring of the newest
  ``websocket.history_size`` events.
- Each subscriber has its own ``asyncio.Queue`` of at most ``websocket.queue_size`` events.
  Publishing never waits for a subscriber: when a queue is full, that subscriber is dropped
  (``kicked``) with a logged reason, its stream is closed, and it can resume with
  ``Last-Event-ID``. So a slow client never slows others and never grows memory without bound.
- Each event's SSE frame (``id:`` and ``data:`` lines) is encoded once, at publish, and the
  same bytes go into every subscriber's queue: with 1,000 subscribers, encoding per stream
  was 1,000 identical encodes per event on the event loop.
- A subscriber that resumes from an id still covered by the history gets exactly the events
  after it; otherwise it gets a fresh ``initial_state`` whose id is the newest event it reflects.

With a ``shared`` registry (several replicas, one Redis) the log lives in the registry: publish
only appends to it, and one reader task per replica tails the log and fans every event out
(its own and other replicas'), so a subscriber on any replica sees every event once, in id
order. A resume reads the missed events from the shared log, so it works on any replica. When
the log starts again below the reader's position (Redis restarted without its data) every
stream is ended; clients reconnect and get a fresh ``initial_state``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from sse_starlette import ServerSentEvent

from lightd_coordinator.registry.base import Registry, StoredEvent
from lightd_shared.events import Event, EventType

__all__ = [
    "SSE_SEPARATOR",
    "EventHub",
    "EventListener",
    "StateProvider",
    "Subscriber",
    "sse_frame",
]

SSE_SEPARATOR = "\n"
"""Line separator of the stream's frames (the ``sep`` of its ``EventSourceResponse``)."""


def sse_frame(event: StoredEvent, *, retry: int | None = None) -> bytes:
    """One event as the bytes of its SSE message (``id:``, ``data:``, maybe ``retry:``)."""
    return ServerSentEvent(
        data=event.body, id=str(event.id), retry=retry, sep=SSE_SEPARATOR
    ).encode()


log = logging.getLogger(__name__)

StateProvider = Callable[[str | None], Awaitable[dict[str, Any]]]
"""Builds the ``initial_state`` data (optionally for one node only)."""

EventListener = Callable[[StoredEvent], None]
"""Called with every event this process sees (its own and, shared, other replicas')."""

_counter = itertools.count(1)
_TAIL_WAIT = 1.0
"""Seconds one read of the shared log blocks before it checks the log did not restart."""
_TAIL_BACKOFF_MAX = 5.0


class Subscriber:
    """One connected client: its filters, its queue, and why it was dropped (if it was)."""

    def __init__(
        self, *, types: frozenset[str] | None, node: str | None, maxsize: int, peer: str
    ) -> None:
        self.number = next(_counter)
        self.types = types
        self.node = node
        self.peer = peer
        self.queue: asyncio.Queue[tuple[StoredEvent, bytes] | None] = asyncio.Queue(maxsize=maxsize)
        self.kicked = asyncio.Event()
        self.reason: str | None = None
        self.last_sent = 0

    def wants(self, event: StoredEvent) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return not (self.node is not None and event.node_id != self.node)


class EventHub:
    def __init__(
        self,
        registry: Registry,
        *,
        history_size: int,
        queue_size: int,
        state: StateProvider,
    ) -> None:
        self._registry = registry
        self._history: deque[StoredEvent] = deque(maxlen=history_size)
        self._history_size = history_size
        self._queue_size = queue_size
        self._state = state
        self._subscribers: set[Subscriber] = set()
        self._lock = asyncio.Lock()
        self._last_id = 0
        self._shared = registry.shared
        self._tail_task: asyncio.Task[None] | None = None
        self._listeners: list[EventListener] = []
        self.published = 0
        self.dropped = 0

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Load the persisted history and id counter (continuing them after a restart).

        Shared: start tailing the log from its newest event (the reader keeps retrying while
        the store is unreachable, so a replica starts even when Redis is down).
        """
        if self._shared:
            self._tail_task = asyncio.create_task(self._tail(), name="event-log-tail")
            return
        for event in await self._registry.recent_events(self._history_size):
            self._history.append(event)
        self._last_id = await self._registry.last_event_id()

    async def _tail(self) -> None:
        failures = 0
        started = False
        while True:
            try:
                if not started:
                    self._last_id = await self._registry.last_event_id()
                    started = True
                events = await self._registry.tail_events(self._last_id, timeout=_TAIL_WAIT)
                if not events:
                    newest = await self._registry.last_event_id()
                    if newest < self._last_id:
                        self._restarted(newest)
                if failures:
                    log.info("event log reachable again; streams continue")
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("cannot read the shared event log (%s); retrying", exc)
                await asyncio.sleep(min(_TAIL_BACKOFF_MAX, 0.1 * 2 ** min(failures, 6)))
                continue
            for event in events:
                if event.id > self._last_id:
                    self._deliver(event)

    def _restarted(self, newest: int) -> None:
        log.warning(
            "the shared event log restarted at event %s (this replica was at %s): ending every "
            "stream so that clients resync with initial_state",
            newest,
            self._last_id,
        )
        self._history.clear()
        self._last_id = newest
        for subscriber in list(self._subscribers):
            self._drop(subscriber, "the event log restarted; reconnect for a fresh state")

    def _deliver(self, event: StoredEvent) -> None:
        """Keep and fan out one event (frame encoded once), then tell the listeners."""
        self._history.append(event)
        self._last_id = event.id
        frame: bytes | None = None
        for subscriber in list(self._subscribers):
            if subscriber.wants(event):
                if frame is None:
                    frame = sse_frame(event)
                self._offer(subscriber, event, frame)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on event %s", event.id)

    async def close(self) -> None:
        """End every stream (each client may resume from its last id later)."""
        if self._tail_task is not None:
            self._tail_task.cancel()
            await asyncio.gather(self._tail_task, return_exceptions=True)
            self._tail_task = None
        async with self._lock:
            for subscriber in list(self._subscribers):
                self._drop(subscriber, "the coordinator is shutting down", warn=False)

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def connected(self) -> int:
        return len(self._subscribers)

    @property
    def history_size(self) -> int:
        return self._history_size

    @staticmethod
    def envelope(type: str, data: Any) -> str:
        """The JSON body of one event, as :meth:`publish` stores it."""
        return Event(type=type, data=data).model_dump_json()

    async def publish(
        self, type: EventType, data: BaseModel | dict[str, Any], *, node_id: str | None = None
    ) -> int:
        """Number, store and fan out one event; never waits for a subscriber.

        ``data`` is the event's shared model (:class:`~lightd_shared.events.ServerUpdate`,
        :class:`~lightd_shared.commands.CommandResult`, a node record) or a JSON object.
        """
        registry = self._registry

        async def append(body: str, keep: int) -> int:
            return await registry.append_event(node_id, type, body, keep)

        event_id = await self.publish_stored(type, data, node_id=node_id, store=append)
        if event_id is None:  # append_event always stores; never reached
            raise RuntimeError(f"the registry stored no {type} event")
        return event_id

    async def publish_stored(
        self,
        type: EventType,
        data: BaseModel | dict[str, Any],
        *,
        node_id: str | None,
        store: Callable[[str, int], Awaitable[int | None]],
    ) -> int | None:
        """:meth:`publish`, with the event stored by ``store(body, keep)`` (its id, or None).

        For a change whose write stores its event in the same step
        (:meth:`~lightd_coordinator.registry.base.Registry.create_node_announced`): ``None``
        from ``store`` means nothing was stored, and nothing is fanned out.
        """
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        body = Event(type=type, data=data).model_dump_json()
        if self._shared:  # the log's reader fans it out, on every replica
            event_id = await store(body, self._history_size)
            if event_id is not None:
                self.published += 1
            return event_id
        async with self._lock:
            event_id = await store(body, self._history_size)
            if event_id is None:
                return None
            self.published += 1
            self._deliver(StoredEvent(id=event_id, node_id=node_id, type=type, body=body))
        return event_id

    def _offer(self, subscriber: Subscriber, event: StoredEvent, frame: bytes) -> None:
        try:
            subscriber.queue.put_nowait((event, frame))
        except asyncio.QueueFull:
            self._drop(
                subscriber,
                f"slow consumer: {subscriber.queue.qsize()} events unread "
                f"(websocket.queue_size); it can resume after event {subscriber.last_sent}",
            )

    def _drop(self, subscriber: Subscriber, reason: str, *, warn: bool = True) -> None:
        self._subscribers.discard(subscriber)
        subscriber.reason = reason
        subscriber.kicked.set()
        if warn:
            self.dropped += 1
            log.warning(
                "event stream client %s (%s) disconnected: %s",
                subscriber.number,
                subscriber.peer,
                reason,
                extra={"client": subscriber.peer, "reason": reason},
            )

    def _resumable(self, last_event_id: int) -> bool:
        oldest = self._history[0].id if self._history else self._last_id + 1
        return oldest - 1 <= last_event_id <= self._last_id

    async def subscribe(
        self,
        *,
        last_event_id: int | None,
        types: frozenset[str] | None,
        node: str | None,
        peer: str,
    ) -> tuple[Subscriber, list[StoredEvent]]:
        """Register a client; return it with what it must receive first.

        That is either the events after ``last_event_id`` (a resume) or one ``initial_state``
        event carrying the id of the newest event it reflects.
        """
        subscriber = Subscriber(types=types, node=node, maxsize=self._queue_size, peer=peer)
        if self._shared:
            return subscriber, await self._subscribe_shared(subscriber, last_event_id, node)
        async with self._lock:
            if last_event_id is not None and self._resumable(last_event_id):
                backlog = [e for e in self._history if e.id > last_event_id and subscriber.wants(e)]
            else:
                data = await self._state(node)
                data["last_event_id"] = self._last_id
                body = _initial_state(data)
                backlog = [StoredEvent(id=self._last_id, type="initial_state", body=body)]
            self._subscribers.add(subscriber)
        return subscriber, backlog

    async def _subscribe_shared(
        self, subscriber: Subscriber, last_event_id: int | None, node: str | None
    ) -> list[StoredEvent]:
        # Added first: what the reader delivers from now on is queued, what came before is
        # read from the log; the stream skips ids it already sent, so the overlap is harmless.
        self._subscribers.add(subscriber)
        try:
            registry = self._registry
            if last_event_id is not None:
                oldest = await registry.oldest_event_id()
                newest = await registry.last_event_id()
                if oldest - 1 <= last_event_id <= newest:
                    missed = await registry.events_after(last_event_id, self._history_size)
                    return [e for e in missed if subscriber.wants(e)]
            newest = await registry.last_event_id()
            data = await self._state(node)
            data["last_event_id"] = newest
            body = _initial_state(data)
            return [StoredEvent(id=newest, type="initial_state", body=body)]
        except BaseException:
            self._subscribers.discard(subscriber)
            raise

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)


def _initial_state(data: Any) -> str:
    """The ``initial_state`` event's JSON. Built by the coordinator from its own registry, not
    read from a peer, so the bounds every *received* body passes (``lightd_shared.wire``: at
    most 20,000 values) do not apply: a fleet of 10,000 nodes is one larger snapshot."""
    return Event.model_construct(type="initial_state", data=data).model_dump_json()
