"""The one writer of the agent's durable state: state files and outboxes, in one ordered path.

:meth:`Machine.move <lightd_agent.servers.machine.Machine.move>` changes a server in memory and
hands its new record and its numbered event to :class:`DurableWriter.submit`. One thread takes
everything submitted since its last commit as one *group* and, in this order:

1. writes each touched server's state file once (temp file, fsync, rename), holding the
   group's events of that server in its ``journal`` field: the write-ahead record;
2. hands all of the group's events to the bus's durable listeners at once
   (:meth:`EventBus.persist`): each remote's journal commits their updates to its outbox in one
   SQLite transaction, one fsync, and records the last event id it holds per server;
3. then, on the event loop, fans the events out (SSE subscribers, history) in order and wakes
   whoever waits for the group (:meth:`DurableWriter.settled`).

So no one sees an event before it is durable in the state file and in every outbox, the event
loop never waits for a disk, and a burst of changes costs one fsync per touched file and one
per outbox instead of two per event. Why a kill at any point leaves state and outbox in
agreement (the journal replay at start closes the window between step 1 and 2) is written
down in ``docs/remote-sync.md``, "Group commit and crash safety".
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.state import JournalEntry, StateStore, StoredServer

__all__ = ["DurableWriter", "WriteOutcome"]

log = logging.getLogger(__name__)

WriteOutcome = dict[str, OSError | None]
"""Per server written in a group: ``None`` when its state file was written, else the error."""


@dataclass(slots=True)
class _Item:
    server: str
    record: StoredServer | None  # None with ``remove``: the file is deleted
    event: LifecycleEvent | None
    remove: bool = False
    reply: asyncio.Future[OSError | None] | None = None  # told the file's outcome


class DurableWriter:
    """One thread, one ordered queue: every state write and outbox commit of the agent."""

    def __init__(
        self,
        store: StateStore,
        bus: EventBus,
        written: Callable[[WriteOutcome], None],
    ) -> None:
        self.store = store
        self.bus = bus
        self._written = written  # called on the event loop after each group
        self._cond = threading.Condition()
        self._commit_lock = threading.Lock()  # one group at a time, thread or caller
        self._queue: list[_Item] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._waiter: asyncio.Future[None] | None = None  # the queued group's
        self._inflight: asyncio.Future[None] | None = None  # the group being committed
        self._closed = False
        self.groups = 0  # groups committed (for tests and the benchmark's notes)

    # -- submitting (event loop) -------------------------------------------------------------

    def submit(
        self,
        server: str,
        record: StoredServer | None,
        event: LifecycleEvent | None,
        *,
        remove: bool = False,
        reply: asyncio.Future[OSError | None] | None = None,
    ) -> None:
        """Queue one write; the event (already numbered) is fanned out once it is durable.
        ``reply`` (optional) gets the state file's outcome: ``None`` or the ``OSError``.

        Without a running event loop (a synchronous caller) the write is done at once, in the
        caller's thread, after what is queued, with the same order of steps.
        """
        item = _Item(server, record, event, remove, reply)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._closed:
            self._drain_inline()
            with self._commit_lock:
                self._commit([item], None, None)
            return
        with self._cond:
            if self._waiter is None:
                self._waiter = loop.create_future()
            self._loop = loop
            self._queue.append(item)
            self._cond.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="lightd-durable-writer", daemon=True
                )
                self._thread.start()

    def commit_now(self, event: LifecycleEvent) -> None:
        """Persist ``event`` (one that changes no state file) at once, in the caller's thread,
        after everything submitted before it: :meth:`EventBus.publish`'s path.

        Waits for the group the thread is committing, takes what is queued and commits it
        with ``event`` as one group, so the outboxes get them in the order they were
        numbered. The fan-out is queued on the writer's event loop behind the earlier
        groups' (synchronous when there is no loop), so subscribers see that order too.
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop if self._loop is not None and self._loop.is_running() else None
        with self._commit_lock:
            items, waiter = self._take()
            items.append(_Item(event.server, None, event))
            self._commit(items, loop, waiter)

    async def settled(self) -> None:
        """Wait until everything submitted so far is durable and published."""
        with self._cond:
            waiter = self._waiter or self._inflight
        if waiter is not None and not waiter.done():
            await asyncio.shield(waiter)

    def close(self) -> None:
        """Write what is queued, then stop the thread (at the agent's exit)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self._drain_inline()

    def _drain_inline(self) -> None:
        """Commit what is queued in the caller's thread (no loop to hand the fan-out to)."""
        with self._commit_lock:
            items, waiter = self._take()
            if items:
                self._commit(items, None, None)
        if waiter is not None and not waiter.done():
            _call_soon(waiter.get_loop(), _resolve, waiter)

    def _take(self) -> tuple[list[_Item], asyncio.Future[None] | None]:
        """Take the queued group and its waiter (call with ``_commit_lock`` held).

        The waiter becomes the in-flight one, whoever commits the group (the thread, a
        publish, the exit), so that :meth:`settled` keeps waiting for it until its fan-out.
        """
        with self._cond:
            items, self._queue = self._queue, []
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                self._inflight = waiter
            return items, waiter

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
            with self._commit_lock:
                items, waiter = self._take()
                loop = self._loop
                if not items:
                    continue
                try:
                    self._commit(items, loop, waiter)
                except Exception:  # the writer must outlive any surprise
                    log.exception("committing %d lifecycle change(s) failed", len(items))
                    if loop is not None and waiter is not None:
                        _call_soon(loop, _resolve, waiter)

    def _commit(
        self,
        items: list[_Item],
        loop: asyncio.AbstractEventLoop | None,
        waiter: asyncio.Future[None] | None,
    ) -> None:
        # 1. each touched server's file once: its last record, the group's events of it
        last: dict[str, _Item] = {}
        journals: dict[str, list[JournalEntry]] = {}
        for item in items:
            if item.record is not None or item.remove:  # an event alone changes no file
                last[item.server] = item
            if item.event is not None:
                journals.setdefault(item.server, []).append(JournalEntry.of(item.event))
        outcome: WriteOutcome = {}
        for server, item in last.items():
            try:
                if item.remove:
                    self.store.remove(server)
                elif item.record is not None:
                    self.store.save(item.record, journal=journals.get(server, []))
                else:
                    continue
            except OSError as exc:
                outcome[server] = exc
            else:
                outcome[server] = None
        # 2. every outbox commits the group's updates at once
        events = [item.event for item in items if item.event is not None]
        if events:
            self.bus.persist(events)
        self.groups += 1

        # 3. on the loop: fan out in order, then let the waiters go
        def done() -> None:
            try:
                self._written(outcome)
                for event in events:
                    self.bus.fan_out(event)
            finally:
                for item in items:
                    if item.reply is not None and not item.reply.done():
                        item.reply.set_result(outcome.get(item.server))
                if waiter is not None:
                    _resolve(waiter)

        if loop is None:
            done()
        else:
            _call_soon(loop, done)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object
) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: the agent is exiting, nobody waits any more
        pass
