"""Where an update is sent: ``POST {url}/update`` from the outbox, in order per server.

Each server with something due gets its own worker task that sends its queue oldest first, one
update in flight per server, so one server's update never waits behind another server's (a
remote that hangs on one update only holds that server back). The loop only starts workers;
a worker reads its next update by the server's own index, never the whole outbox. The
acknowledgements of all servers answered meanwhile are deleted in one commit (one fsync), and
each worker sends its server's next update only once its own acknowledgement is committed.
:func:`classify` is the whole policy, as a pure function:

============================  ===========  ========================================================
answer                        verdict      what happens
============================  ===========  ========================================================
2xx                           deliver      deleted from the outbox
2xx with ``success: false``   retry        backoff for that update
no connection                 pause        remote-wide pause, exponential backoff + jitter (capped)
no answer in time             retry        backoff for that update (that server waits, no other)
401, 403                      pause        logged clearly; retried once per health interval
408, 429, 5xx                 retry        backoff; ``Retry-After`` (capped by
                                           ``remote.retry_max_delay``) pauses the whole remote
other 4xx                     dead-letter  kept for operators to list and replay
anything else                 retry        backoff
============================  ===========  ========================================================

Over 400 lines on purpose: it is one idea, sending the outbox (the policy table, the
per-server workers and the grouped acknowledgements that feed each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from lightd_agent.remote.client import RemoteClient, RemoteError, RemoteTimeout
from lightd_agent.remote.health import TOKEN_HINT, excerpt
from lightd_agent.remote.journal import STORAGE_RETRY_SECONDS, Journal
from lightd_agent.remote.outbox import Outbox, PendingUpdate
from lightd_agent.remote.pause import Pause, PauseKind
from lightd_agent.remote.retry import backoff_delay, retry_after_seconds
from lightd_shared.durations import format_duration
from lightd_shared.remote import RemoteSettings, mask_url

__all__ = ["Decision", "Delivery", "Verdict", "classify", "classify_failure"]

log = logging.getLogger("lightd_agent.remote")

MAX_IN_FLIGHT = 32
"""At most this many servers' updates are on the wire at once."""

READ_AHEAD = 32
"""How many of a server's next updates a worker reads at once (one read, off the loop)."""


def _ignore_outcome(future: asyncio.Future[list[PendingUpdate]]) -> None:
    """Retrieve a read-ahead nobody waits for, so its error (if any) is not reported."""
    if not future.cancelled():
        future.exception()


class Verdict(StrEnum):
    DELIVER = "deliver"
    RETRY = "retry"
    PAUSE = "pause"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    pause: PauseKind | None = None
    retry_after: float | None = None
    """Seconds the remote asked to wait (``Retry-After``), uncapped."""


def classify(status: int, *, success: bool | None, retry_after: float | None) -> Decision:
    """What an answer to ``POST /update`` means (``success``: the body's ``success`` field)."""
    if 200 <= status < 300:
        if success is False:
            return Decision(Verdict.RETRY, "the remote answered success: false")
        return Decision(Verdict.DELIVER, f"HTTP {status}")
    if status in (401, 403):
        return Decision(Verdict.PAUSE, f"HTTP {status}: {TOKEN_HINT}", PauseKind.AUTH)
    if status in (408, 429) or status >= 500:
        return Decision(Verdict.RETRY, f"HTTP {status}", retry_after=retry_after)
    if 400 <= status < 500:
        return Decision(Verdict.DEAD_LETTER, f"HTTP {status}")
    return Decision(Verdict.RETRY, f"unexpected HTTP {status}", retry_after=retry_after)


def classify_failure(error: RemoteError) -> Decision:
    """No answer: a timeout holds back only its server; no connection pauses the remote."""
    if isinstance(error, RemoteTimeout):
        return Decision(Verdict.RETRY, str(error))
    return Decision(Verdict.PAUSE, str(error), PauseKind.DOWN)


def _success_field(response: httpx.Response) -> bool | None:
    try:
        answer = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    value = answer.get("success") if isinstance(answer, dict) else None
    return value if isinstance(value, bool) else None


class _GroupCommit:
    """Acknowledgements committed together: one commit (one fsync) for all that arrive
    while the previous commit runs, off the loop.

    Each worker still waits for its updates' commits before it reads its server's queue
    again, so a crash can only lose acknowledgements whose next update was not read yet (a
    resend with the same key, in order). A commit of ``n`` acknowledgements costs about what
    one did, so twenty servers draining at once no longer queue twenty fsyncs behind the
    outbox's one lock for every round of answers. A commit only deletes: the worker reads
    what comes next itself, once per read-ahead (a commit that also looked up each server's
    next update did one query per acknowledgement, and the workers used one in 33).
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._waiting: list[tuple[PendingUpdate, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def acknowledge(self, update: PendingUpdate) -> None:
        """Delete ``update`` for good; return once that is committed."""
        await self.submit(update)

    def submit(self, update: PendingUpdate) -> asyncio.Future[None]:
        """Queue ``update``'s deletion; the future is done once the commit holding it is
        (commits run in the order they were queued)."""
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((update, answer))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit(), name="remote-acknowledge")
        return answer

    async def _commit(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(
                    self._outbox.acknowledge_many, [update for update, _ in batch]
                )
            except asyncio.CancelledError:
                for _, answer in batch:
                    answer.cancel()
                raise
            except Exception as exc:  # the senders fail as a lone commit would have made them
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for _, answer in batch:
                if not answer.done():  # its worker may have been cancelled meanwhile
                    answer.set_result(None)

    async def close(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
        for _, answer in self._waiting:
            answer.cancel()
        self._waiting.clear()


class Delivery:
    """Sends the outbox to the remote; one task per server with something due."""

    def __init__(
        self,
        outbox: Outbox,
        journal: Journal,
        settings: Callable[[], RemoteSettings],
        client: Callable[[], RemoteClient | None],
        *,
        retry_base: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.journal = journal
        self._settings = settings
        self._client = client
        self._retry_base = retry_base
        self._rng = random.Random()
        self.pause = Pause()
        self.wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._acks = _GroupCommit(outbox)

    def resume(self) -> None:
        """The remote answers again: end the pause, make every update due, send now."""
        self.pause.clear()
        self.outbox.make_all_due(time.time())
        self.wake.set()

    async def loop(self) -> None:
        try:
            while True:
                try:
                    await self._round()
                except Exception:  # never a dead loop: log, breathe, go on
                    log.exception("remote delivery failed unexpectedly; retrying in 1s")
                    await asyncio.sleep(1.0)
        finally:
            tasks = list(self._in_flight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._in_flight.clear()
            await self._acks.close()

    async def _round(self) -> None:
        """Start the due head of every server not in flight; then wait for a reason to look."""
        self.wake.clear()
        if self.journal.unwritten:
            await asyncio.to_thread(self.journal.retry_unwritten)
        now = time.time()
        if self.pause.active(now):
            await self._sleep(self._storage_wait(self.pause.until - now))
            return
        for update in self.outbox.due(now):
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                break
            if update.server not in self._in_flight:
                self._start(update)
        at = self.outbox.next_attempt_at(excluding=self._in_flight.keys())
        wait = None if at is None else max(0.0, at - time.time())
        await self._sleep(self._storage_wait(wait))

    async def _worker(self, update: PendingUpdate) -> None:
        """Send one server's due updates in order; stop at a pause or when none is due.

        ``update`` is the server's due head: it goes on the wire at once, while the server's
        next updates (up to :data:`READ_AHEAD`) are read off the loop, so a new event's update
        waits for no thread; each next one is sent as soon as the remote acknowledged the one
        before it: the deletion of an acknowledged update is committed with the others of the
        moment while the next one is on the wire. Only once every acknowledgement of the
        worker is committed does it read the server's queue again (its oldest updates:
        whatever was acknowledged is gone) or end, so a new worker never resends an update
        whose acknowledgement is still being committed (a crash meanwhile means a resend with
        the same key, as before).
        """
        server = update.server
        acks: list[asyncio.Future[None]] = []
        ahead = asyncio.ensure_future(
            asyncio.to_thread(self.outbox.after, server, update.seq, READ_AHEAD)
        )
        try:
            if not await self._send(update, acks):
                return
            batch = await ahead
            while True:
                for current in batch:
                    if current.next_attempt_at > time.time():
                        return  # backing off: the loop starts a worker again when it is due
                    if not await self._send(current, acks):
                        return
                await asyncio.gather(*acks)
                acks.clear()
                batch = await asyncio.to_thread(self.outbox.first, server, READ_AHEAD + 1)
                if not batch:
                    return
        finally:
            if not ahead.done():  # the head was not acknowledged: its read-ahead is not needed
                ahead.cancel()
                ahead.add_done_callback(_ignore_outcome)
            if acks:
                await asyncio.gather(*acks, return_exceptions=True)

    async def _send(self, update: PendingUpdate, acks: list[asyncio.Future[None]]) -> bool:
        """Deliver one update; whether the worker may send the server's next one."""
        acknowledged, ack = await self._deliver(update)
        if ack is not None:
            acks.append(ack)
        return acknowledged and not self.pause.active(time.time())

    def _start(self, update: PendingUpdate) -> None:
        task = asyncio.create_task(self._worker(update), name=f"remote-update:{update.server}")
        self._in_flight[update.server] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._in_flight.get(update.server) is task:
                del self._in_flight[update.server]
            self.wake.set()

        task.add_done_callback(done)

    def _storage_wait(self, seconds: float | None) -> float | None:
        """``seconds``, but no longer than the storage retry while updates wait in memory."""
        if not self.journal.unwritten:
            return seconds
        return STORAGE_RETRY_SECONDS if seconds is None else min(seconds, STORAGE_RETRY_SECONDS)

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()

    def _backoff(self, attempt: int) -> float:
        cap = max(self._settings().retry_max_delay.total_seconds(), self._retry_base)
        return backoff_delay(attempt, base=self._retry_base, cap=cap, rng=self._rng)

    async def _deliver(self, update: PendingUpdate) -> tuple[bool, asyncio.Future[None] | None]:
        """Send one update; whether the remote acknowledged it, and then the commit of its
        deletion."""
        client = self._client()
        if client is None:  # pragma: no cover - the loop only runs with a client
            return False, None
        try:
            response = await client.post_update(
                update.content, idempotency_key=update.idempotency_key, sequence=update.seq
            )
        except RemoteError as exc:
            self._no_answer(update, classify_failure(exc))
            return False, None
        self.pause.failures = 0
        decision = classify(
            response.status_code,
            success=_success_field(response),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
        if decision.verdict is Verdict.DELIVER:
            # Off the loop: the acknowledgement's commit (an fsync) would hold up the next
            # event's enqueue and every request meanwhile, and so would waiting for the
            # outbox's lock while another server's acknowledgement commits. Committed with
            # the other servers' acknowledgements of the moment (see _GroupCommit). A lost
            # acknowledgement only means a resend (same key).
            ack = self._acks.submit(update)
            log.debug("remote acknowledged update #%d of server %s", update.seq, update.server)
            if self.journal.full:  # fewer updates can only end a full outbox, never start one
                ack.add_done_callback(lambda _: self.journal.check_bound())
            return True, ack
        if decision.verdict is Verdict.PAUSE:
            self._refused_token(update, response)
        elif decision.verdict is Verdict.DEAD_LETTER:
            self._dead_letter(update, response)
        else:
            self._retry(update, decision)
        return False, None

    def _no_answer(self, update: PendingUpdate, decision: Decision) -> None:
        self.pause.failures += 1
        delay = self._backoff(self.pause.failures if decision.pause else update.attempts + 1)
        self.outbox.retry_later(update.id, time.time() + delay, decision.reason)
        if decision.pause is not None:
            self.pause.hold(delay, decision.pause, time.time())
        log.warning(
            "could not deliver update #%d of server %s: %s; it stays in the outbox "
            "(%d pending), next try in %.1fs",
            update.seq,
            update.server,
            decision.reason,
            self.outbox.depth(),
            delay,
            extra={"server": update.server, "sequence": update.seq, "attempt": update.attempts + 1},
        )

    def _refused_token(self, update: PendingUpdate, response: httpx.Response) -> None:
        settings = self._settings()
        interval = settings.health_interval.total_seconds()
        status = response.status_code
        self.outbox.retry_later(update.id, time.time() + interval, f"HTTP {status}: {TOKEN_HINT}")
        self.pause.hold(interval, PauseKind.AUTH, time.time())
        said = excerpt(response)
        log.error(
            "%s (HTTP %d to POST %s%s). %d updates are kept and retried once per health "
            "interval (%s).",
            TOKEN_HINT,
            status,
            mask_url(response.request.url),
            f": {said}" if said else "",  # the remote's own words, e.g. a node proof
            self.outbox.depth(),
            format_duration(settings.health_interval),
            extra={"server": update.server, "sequence": update.seq, "attempt": update.attempts + 1},
        )

    def _dead_letter(self, update: PendingUpdate, response: httpx.Response) -> None:
        status = response.status_code
        reason = f"HTTP {status}"
        said = excerpt(response)
        if said:
            reason += f": {said}"
        dead_id = self.outbox.dead_letter(
            update, status_code=status, reason=reason, now=time.time()
        )
        self.journal.check_bound()
        log.error(
            "remote refused update #%d of server %s for good (%s); moved to dead letter %d. "
            "Fix the cause, then replay it: `lightd remote dead-letters replay %d` or "
            "POST /remote/dead-letters/%d/replay",
            update.seq,
            update.server,
            reason,
            dead_id,
            dead_id,
            dead_id,
            extra={
                "server": update.server,
                "sequence": update.seq,
                "attempt": update.attempts + 1,
                "status_code": status,
                "dead_letter": dead_id,
            },
        )

    def _retry(self, update: PendingUpdate, decision: Decision) -> None:
        attempt = update.attempts + 1
        retry_after = decision.retry_after
        capped = ""
        if retry_after is not None:
            # Capped: a remote asking for a day (or a year) must not stall every update.
            cap = self._settings().retry_max_delay.total_seconds()
            delay = min(retry_after, cap)
            if retry_after > cap:
                capped = f" (asked for {retry_after:.0f}s, capped at remote.retry_max_delay)"
            self.pause.hold(delay, PauseKind.RETRY_AFTER, time.time())
        else:
            delay = self._backoff(attempt)
        self.outbox.retry_later(update.id, time.time() + delay, decision.reason)
        log.warning(
            "remote answered %s to update #%d of server %s (attempt %d); retrying in %.1fs%s%s",
            decision.reason,
            update.seq,
            update.server,
            attempt,
            delay,
            " as its Retry-After asks" if retry_after is not None else "",
            capped,
            extra={"server": update.server, "sequence": update.seq, "attempt": attempt},
        )
