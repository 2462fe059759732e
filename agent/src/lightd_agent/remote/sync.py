"""Remote sync: lifecycle events -> durable outbox -> ``POST {url}/update``, in order, until acked.

:class:`RemoteSync` plugs into the agent's :class:`~lightd_agent.events.EventBus` twice:

- as a *durable listener*: :meth:`RemoteSync.record` turns an event into the seed's body
  (:mod:`.mapping`) and commits it to the outbox (:mod:`.outbox`) before ``publish`` returns;
- as a *gate*: :meth:`RemoteSync.refusal` refuses new lifecycle actions (503) while the outbox
  is at its bound (``remote.outbox_limit``), so nothing ever has to be dropped, and while any
  update could not be written to it.

An update whose outbox write fails (disk full, read-only state directory) is not dropped: it
waits in memory, in order, and every later update waits behind it (so a server's updates keep
their order). Each delivery round, and each new update, tries to write the waiting ones again,
oldest first; until all are written new lifecycle actions are refused (503) and ``/health`` says
why. Only a crash in that window can lose them, which is why actions are refused meanwhile.

Two background tasks run while remote sync is enabled:

- the **health loop**: ``GET {url}/health`` at start and every ``remote.health_interval``
  (drift-free), logging ``Remote health check: OK`` or ``Remote health check: Failed: <reason>``;
  an OK cuts every backoff and ``Retry-After`` pause short, so delivery resumes the moment the
  remote is back;
- the **delivery loop**: sends the head of each server's queue (so a server's updates arrive in
  order), deletes it on a 2xx, and otherwise:

  ============================  ==================================================================
  answer                        what happens
  ============================  ==================================================================
  no answer / timeout           remote-wide pause with exponential backoff + jitter (capped)
  401, 403                      logged clearly; retried once per health interval, not hammered
  408, 429, 5xx                 retried with backoff; ``Retry-After`` honoured up to
                                ``remote.retry_max_delay`` (remote-wide pause)
  other 4xx                     moved to the dead letters, to be listed and replayed by operators
  ============================  ==================================================================

``POST /remote/config/reload`` calls :meth:`RemoteSync.reload`, which re-reads the settings and
restarts the loops with them: no agent restart needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.remote.client import RemoteClient, RemoteError
from lightd_agent.remote.mapping import update_body
from lightd_agent.remote.outbox import Outbox, PendingUpdate
from lightd_agent.remote.proof import CoordinatorProof
from lightd_agent.remote.retry import backoff_delay, retry_after_seconds
from lightd_agent.wakeup import set_event_threadsafe
from lightd_shared.durations import format_duration
from lightd_shared.remote import (
    AppliedContainer,
    ConfigDocument,
    ConfigPull,
    DeadLetter,
    RemoteSettings,
    RemoteSyncHealth,
    mask_url,
)
from lightd_shared.tokens import mask_token

__all__ = ["OUTBOX_FILE", "RemoteCallFailed", "RemoteDisabled", "RemoteSync"]

log = logging.getLogger("lightd_agent.remote")

OUTBOX_FILE = "remote-outbox.sqlite3"
STORAGE_RETRY_SECONDS = 1.0
"""How often updates that could not be written to the outbox are tried again."""
PULLED_CONFIG_FILE = "remote-config.json"
TOKEN_HINT = "remote rejected the token; check that both sides use the same token"

PauseKind = Literal["down", "auth", "retry-after"]


class RemoteDisabled(Exception):
    """An operator asked for a remote call while ``remote.enabled`` is false."""


class RemoteCallFailed(Exception):
    """An operator-triggered call (config pull/push) got no usable answer from the remote."""


def _excerpt(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


class RemoteSync:
    """The agent's remote-sync subsystem: outbox, delivery loop, health loop, config calls."""

    def __init__(
        self,
        settings: RemoteSettings,
        state_dir: Path,
        *,
        reload_settings: Callable[[], RemoteSettings] | None = None,
        config_document: Callable[[], ConfigDocument] | None = None,
        apply_config: Callable[[ConfigDocument], Awaitable[list[AppliedContainer]]] | None = None,
        server_info: Callable[[], dict[str, Any]] | None = None,
        retry_base: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        outbox_file: str = OUTBOX_FILE,
        coordinator_proof: CoordinatorProof | None = None,
    ) -> None:
        self.settings = settings
        self._coordinator_proof = coordinator_proof
        self.state_dir = state_dir
        self.outbox = Outbox(state_dir / outbox_file)
        self._reload_settings = reload_settings
        self._config_document = config_document
        self._apply_config = apply_config
        self._server_info = server_info
        self._retry_base = retry_base
        self._transport = transport
        self._rng = random.Random()

        self._client: RemoteClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._detach: list[Callable[[], None]] = []

        self._paused_until = 0.0
        self._pause_kind: PauseKind | None = None
        self._consecutive_failures = 0
        self._remote_state: Literal["ok", "failed", "unknown"] = "unknown"
        self._last_check: datetime | None = None
        self._last_error: str | None = None
        self._full = False
        self._storage_error: str | None = None
        # Updates the outbox could not take yet: (server, body, created at), oldest first.
        self._unwritten: list[tuple[str, dict[str, Any], float]] = []
        self._record_lock = threading.Lock()

    # -- wiring --------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        """Become the bus's durable listener and gate."""
        self._detach.append(bus.add_listener(self.record))
        self._detach.append(bus.add_gate(self))

    def detach(self) -> None:
        while self._detach:
            self._detach.pop()()

    async def start(self) -> None:
        """Start the health and delivery loops (when enabled); pending updates go out at once."""
        self._loop = asyncio.get_running_loop()
        self._check_bound()
        if not self.settings.enabled:
            log.info("remote sync is disabled (remote.enabled is false)")
            return
        # The node proof goes to the coordinator's remote endpoint only (decided per url, so
        # a reload that points elsewhere stops sending it).
        proof = self._coordinator_proof
        self._client = RemoteClient(
            self.settings,
            transport=self._transport,
            node_proof=None if proof is None else proof.for_url(self.settings.url),
            alternates=None if proof is None else proof.alternates(self.settings.url),
        )
        self._paused_until = 0.0
        self._pause_kind = None
        self._consecutive_failures = 0
        self.outbox.make_all_due(time.time())
        pending = self.outbox.depth()
        log.info(
            "remote sync to %s started (%d pending update%s in the outbox)",
            self.settings.shown_url(),
            pending,
            "" if pending == 1 else "s",
            extra={"remote_url": self.settings.shown_url(), "outbox_depth": pending},
        )
        self._tasks = [
            asyncio.create_task(self._health_loop(), name="remote-health"),
            asyncio.create_task(self._delivery_loop(), name="remote-delivery"),
        ]

    async def stop(self) -> None:
        """Stop the loops and the HTTP client. Pending updates stay in the outbox."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def close(self) -> None:
        """Close the outbox file (after :meth:`stop`, when the agent exits)."""
        self.detach()
        with self._record_lock:
            if self._unwritten:
                self._write_unwritten()
            if self._unwritten:
                log.critical(
                    "%d remote update(s) could never be written to the outbox %s and are lost "
                    "with this exit: %s",
                    len(self._unwritten),
                    self.outbox.path,
                    ", ".join(f"{server} {body}" for server, body, _ in self._unwritten),
                )
        self.outbox.close()

    async def reload(self) -> RemoteSettings:
        """Re-read the settings and apply them without a restart; raise if they are invalid."""
        if self._reload_settings is None:
            raise RuntimeError("this agent was started without a config file to reload from")
        settings = self._reload_settings()
        await self.apply(settings)
        return settings

    async def apply(self, settings: RemoteSettings) -> None:
        """Switch to new remote settings: stop the loops, swap the client, start again."""
        async with self._apply_lock:
            await self.stop()
            self.settings = settings
            self._remote_state = "unknown"
            self._last_error = None
            await self.start()

    # -- the durable listener and the gate ------------------------------------------------

    def record(self, event: LifecycleEvent) -> None:
        """Durable listener: commit the event's update to the outbox before publish returns.

        If the outbox cannot be written, the update waits in memory behind any older waiting
        one (see the module docstring) and new lifecycle actions are refused until it is written.
        """
        if not self.settings.enabled:
            return
        body = update_body(event, self.settings.events)
        if body is None:
            return
        with self._record_lock:
            self._unwritten.append((event.server, body, time.time()))
            self._write_unwritten()
        self._check_bound()
        self._wake_up()

    def _write_unwritten(self) -> bool:
        """Write the waiting updates to the outbox, oldest first; ``True`` when none is left.

        Stops at the first failure so that no update overtakes an older one. Call with
        ``_record_lock`` held.
        """
        while self._unwritten:
            server, body, created = self._unwritten[0]
            try:
                seq = self.outbox.enqueue(server, body, now=created)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self._storage_error:  # once per problem, not once per retry
                    log.critical(
                        "could not write update for server %s to the remote-sync outbox %s "
                        "(%s); %d update%s kept in memory and retried every %.0fs; new "
                        "lifecycle actions are refused until the state directory is writable "
                        "again",
                        server,
                        self.outbox.path,
                        error,
                        len(self._unwritten),
                        "" if len(self._unwritten) == 1 else "s",
                        STORAGE_RETRY_SECONDS,
                        extra={"server": server, "unwritten": len(self._unwritten)},
                    )
                self._storage_error = error
                return False
            self._unwritten.pop(0)
            log.debug(
                "queued update %s #%d for the remote",
                server,
                seq,
                extra={"server": server, "sequence": seq, "body": body},
            )
        if self._storage_error is not None:
            log.warning(
                "the remote-sync outbox %s is writable again; every waiting update is written "
                "and lifecycle actions are accepted again",
                self.outbox.path,
            )
            self._storage_error = None
        return True

    def _retry_unwritten(self) -> None:
        with self._record_lock:
            if self._unwritten:
                self._write_unwritten()
        self._check_bound()

    def _storage_blocked(self) -> bool:
        """Updates wait in memory for the outbox. Only while sync is on: turned off (a reload),
        nothing retries them and nothing new is recorded, so refusing actions would block the
        host for good; they stay in memory and are written when sync is turned on again."""
        return self.settings.enabled and (self._storage_error is not None or bool(self._unwritten))

    def refusal(self) -> str | None:
        """Gate: why new lifecycle actions must wait (answered 503), or ``None``."""
        if self._storage_blocked():
            return (
                f"the remote-sync outbox cannot be written ({self._storage_error}); "
                f"{len(self._unwritten)} updates wait in memory; "
                f"fix the state directory {self.state_dir}"
            )
        if self._full:
            return (
                f"the remote-sync outbox is full ({self.outbox.depth()} undelivered updates, "
                f"remote.outbox_limit is {self.settings.outbox_limit}); new lifecycle actions "
                f"are refused until the remote at {self.settings.shown_url()} takes them; "
                "check GET /health and the remote"
            )
        return None

    def _check_bound(self) -> None:
        depth = self.outbox.depth()
        # Disabled, nothing new is recorded, so there is nothing to protect by refusing.
        full = self.settings.enabled and depth >= self.settings.outbox_limit
        if full and not self._full:
            log.error(
                "remote-sync outbox is FULL: %d undelivered updates (remote.outbox_limit %d). "
                "Nothing is dropped, but new lifecycle actions are refused with 503 until the "
                "remote at %s takes them. Check the remote and `lightd status`.",
                depth,
                self.settings.outbox_limit,
                self.settings.shown_url(),
                extra={"outbox_depth": depth, "outbox_limit": self.settings.outbox_limit},
            )
        elif self._full and not full:
            log.warning(
                "remote-sync outbox drained below its bound (%d of %d); lifecycle actions are "
                "accepted again",
                depth,
                self.settings.outbox_limit,
            )
        self._full = full

    def _wake_up(self) -> None:
        set_event_threadsafe(self._loop, self._wake)

    # -- health ----------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        interval = self.settings.health_interval.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self.check_health()
            except Exception:  # a bug here must not end health checks for good
                log.exception("remote health check crashed; trying again next interval")
            await asyncio.sleep(max(0.0, interval - (loop.time() - began)))

    async def check_health(self) -> bool:
        """``GET {url}/health`` once; log the seed's line; resume delivery when it is OK."""
        client = self._client
        if client is None:
            return False
        reason: str | None
        try:
            response = await client.health()
        except RemoteError as exc:
            reason = str(exc)
        else:
            if response.is_success:
                reason = None
            elif response.status_code in (401, 403):
                reason = f"HTTP {response.status_code}: {TOKEN_HINT}"
            else:
                reason = f"HTTP {response.status_code} from GET {mask_url(response.request.url)}"
                excerpt = _excerpt(response)
                if excerpt:
                    reason += f": {excerpt}"
        self._last_check = datetime.now(UTC)
        if reason is None:
            came_back = self._remote_state != "ok"
            self._remote_state = "ok"
            self._last_error = None
            log.info("Remote health check: OK", extra={"remote_url": self.settings.shown_url()})
            if came_back or self._pause_kind is not None:
                self._resume()
            return True
        self._remote_state = "failed"
        self._last_error = reason
        log.warning(
            "Remote health check: Failed: %s",
            reason,
            extra={"remote_url": self.settings.shown_url(), "reason": reason},
        )
        return False

    def _resume(self) -> None:
        """The remote answers its health check: retry everything now.

        This ends a ``Retry-After`` pause too: a remote that says it is healthy is ready for
        updates, and a remote that keeps answering 503 only sets a new (capped) pause.
        """
        self._paused_until = 0.0
        self._pause_kind = None
        self._consecutive_failures = 0
        self.outbox.make_all_due(time.time())
        self._wake.set()

    # -- delivery ------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        while True:
            try:
                await self._delivery_round()
            except Exception:  # never a dead loop: log, breathe, go on
                log.exception("remote delivery failed unexpectedly; retrying in 1s")
                await asyncio.sleep(1.0)

    async def _delivery_round(self) -> None:
        """One pass: wait while paused or idle, else send the due head of each server.

        Updates still waiting for the outbox are written first; while any are left the round
        wakes again within :data:`STORAGE_RETRY_SECONDS` to try once more.
        """
        self._wake.clear()
        if self._unwritten:
            await asyncio.to_thread(self._retry_unwritten)
        now = time.time()
        if self._paused_until > now:
            await self._sleep(self._storage_wait(self._paused_until - now))
            return
        heads = self.outbox.due(now)
        if not heads:
            at = self.outbox.next_attempt_at()
            await self._sleep(self._storage_wait(None if at is None else max(0.0, at - now)))
            return
        for update in heads:
            await self._deliver(update)
            if self._paused_until > time.time():
                break

    def _storage_wait(self, seconds: float | None) -> float | None:
        """``seconds``, but no longer than the storage retry while updates wait in memory."""
        if not self._unwritten:
            return seconds
        return STORAGE_RETRY_SECONDS if seconds is None else min(seconds, STORAGE_RETRY_SECONDS)

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _deliver(self, update: PendingUpdate) -> None:
        client = self._client
        if client is None:  # pragma: no cover - the loop only runs with a client
            return
        attempt = update.attempts + 1
        where = {"server": update.server, "sequence": update.seq, "attempt": attempt}
        try:
            response = await client.post_update(
                update.body, idempotency_key=update.idempotency_key, sequence=update.seq
            )
        except RemoteError as exc:
            self._consecutive_failures += 1
            delay = self._backoff(self._consecutive_failures)
            self.outbox.retry_later(update.id, time.time() + delay, str(exc))
            self._pause(delay, "down")
            log.warning(
                "could not deliver update #%d of server %s: %s; it stays in the outbox "
                "(%d pending), next try in %.1fs",
                update.seq,
                update.server,
                exc,
                self.outbox.depth(),
                delay,
                extra=where,
            )
            return
        self._consecutive_failures = 0
        status = response.status_code
        if response.is_success:
            if self._says_not_success(response):
                self._retry(update, response, "the remote answered success: false")
                return
            # Off the loop: the acknowledgement's commit (an fsync) would hold up the next
            # event's enqueue and every request meanwhile. Awaited, so the next round reads
            # the server's next head; a lost acknowledgement only means a resend (same key).
            await asyncio.to_thread(self.outbox.acknowledge, update.id)
            log.debug("remote acknowledged update #%d of server %s", update.seq, update.server)
            self._check_bound()
            return
        if status in (401, 403):
            interval = self.settings.health_interval.total_seconds()
            reason = f"HTTP {status}: {TOKEN_HINT}"
            self.outbox.retry_later(update.id, time.time() + interval, reason)
            self._pause(interval, "auth")
            excerpt = _excerpt(response)
            log.error(
                "%s (HTTP %d to POST %s%s). %d updates are kept and retried once per health "
                "interval (%s).",
                TOKEN_HINT,
                status,
                mask_url(response.request.url),
                f": {excerpt}" if excerpt else "",  # the remote's own words, e.g. a node proof
                self.outbox.depth(),
                format_duration(self.settings.health_interval),
                extra=where,
            )
            return
        if status in (408, 429) or status >= 500:
            self._retry(update, response, f"HTTP {status}")
            return
        if 400 <= status < 500:
            reason = f"HTTP {status}"
            excerpt = _excerpt(response)
            if excerpt:
                reason += f": {excerpt}"
            dead_id = self.outbox.dead_letter(
                update, status_code=status, reason=reason, now=time.time()
            )
            self._check_bound()
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
                extra={**where, "status_code": status, "dead_letter": dead_id},
            )
            return
        self._retry(update, response, f"unexpected HTTP {status}")

    def _retry(self, update: PendingUpdate, response: httpx.Response, reason: str) -> None:
        attempt = update.attempts + 1
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        capped = ""
        if retry_after is not None:
            # Capped: a remote asking for a day (or a year) must not stall every update.
            cap = self.settings.retry_max_delay.total_seconds()
            delay = min(retry_after, cap)
            if retry_after > cap:
                capped = f" (asked for {retry_after:.0f}s, capped at remote.retry_max_delay)"
            self._pause(delay, "retry-after")
        else:
            delay = self._backoff(attempt)
        self.outbox.retry_later(update.id, time.time() + delay, reason)
        log.warning(
            "remote answered %s to update #%d of server %s (attempt %d); retrying in %.1fs%s%s",
            reason,
            update.seq,
            update.server,
            attempt,
            delay,
            " as its Retry-After asks" if retry_after is not None else "",
            capped,
            extra={"server": update.server, "sequence": update.seq, "attempt": attempt},
        )

    @staticmethod
    def _says_not_success(response: httpx.Response) -> bool:
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return isinstance(answer, dict) and answer.get("success") is False

    def _backoff(self, attempt: int) -> float:
        cap = max(self.settings.retry_max_delay.total_seconds(), self._retry_base)
        return backoff_delay(attempt, base=self._retry_base, cap=cap, rng=self._rng)

    def _pause(self, seconds: float, kind: PauseKind) -> None:
        until = time.time() + seconds
        if until > self._paused_until or kind == "retry-after":
            self._paused_until = until
            self._pause_kind = kind

    # -- operator actions ----------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        return self.outbox.dead_letters()

    def replay(self, dead_letter_id: int) -> bool:
        """Queue a dead letter again (same sequence and key); ``False`` if there is none."""
        if not self.outbox.replay(dead_letter_id):
            return False
        log.info("dead letter %d queued again for the remote", dead_letter_id)
        self._check_bound()
        self._wake_up()
        return True

    def discard(self, dead_letter_id: int) -> bool:
        return self.outbox.discard_dead_letter(dead_letter_id)

    def _require_client(self) -> RemoteClient:
        if not self.settings.enabled or self._client is None:
            raise RemoteDisabled(
                "remote sync is disabled; set remote.enabled, remote.url and remote.token in "
                "config.json, then POST /remote/config/reload"
            )
        return self._client

    async def pull_config(self, *, apply: bool = False) -> ConfigPull:
        """``GET {url}/config``: validate it, keep a copy in the state directory.

        With ``apply``, the pulled containers this agent does not have yet are created (each
        validated and checked like ``POST /containers``); existing ones are left alone.
        """
        client = self._require_client()
        if apply and self._apply_config is None:
            raise RemoteDisabled("this agent cannot apply pulled containers (no server manager)")
        try:
            response = await client.get_config()
        except RemoteError as exc:
            raise RemoteCallFailed(str(exc)) from exc
        if not response.is_success:
            hint = f": {TOKEN_HINT}" if response.status_code in (401, 403) else ""
            raise RemoteCallFailed(
                f"GET {mask_url(response.request.url)} answered HTTP {response.status_code}{hint}"
            )
        try:
            document = ConfigDocument.model_validate(response.json())
        except ValueError as exc:
            raise RemoteCallFailed(
                f"GET {mask_url(response.request.url)} did not answer a config document "
                f'{{"containers": [...], "settings": {{...}}}}: {exc}'
            ) from exc
        target = self.state_dir / PULLED_CONFIG_FILE
        temporary = target.with_suffix(".tmp")
        temporary.write_text(document.model_dump_json(indent=2), encoding="utf-8")
        temporary.replace(target)
        log.info(
            "pulled configuration from the remote: %d containers, %d settings",
            len(document.containers),
            len(document.settings),
        )
        applied: list[AppliedContainer] = []
        if apply and self._apply_config is not None:
            applied = await self._apply_config(document)
            log.info(
                "applied the pulled configuration: %s",
                ", ".join(f"{a.id or '?'} {a.outcome}" for a in applied) or "no containers",
            )
        return ConfigPull(config=document, applied=applied)

    def config_document(self) -> ConfigDocument:
        """The agent's own configuration as the seed's ``{"containers", "settings"}``."""
        if self._config_document is not None:
            return self._config_document()
        return ConfigDocument(containers=[], settings={})

    async def push_config(self) -> ConfigDocument:
        """``POST {url}/config`` with the agent's own configuration; return what was sent."""
        client = self._require_client()
        document = self.config_document()
        try:
            response = await client.post_config(document)
        except RemoteError as exc:
            raise RemoteCallFailed(str(exc)) from exc
        if not response.is_success:
            hint = f": {TOKEN_HINT}" if response.status_code in (401, 403) else ""
            raise RemoteCallFailed(
                f"POST {mask_url(response.request.url)} answered HTTP {response.status_code}{hint}"
            )
        log.info("pushed configuration to the remote (%d containers)", len(document.containers))
        return document

    # -- health snapshot -----------------------------------------------------------------

    def snapshot(self) -> RemoteSyncHealth:
        """Remote health, outbox depth, oldest undelivered age and dead letters, for /health."""
        oldest = self.outbox.oldest_created_at()
        depth = self.outbox.depth()
        unwritten = len(self._unwritten)
        full = self.settings.enabled and depth >= self.settings.outbox_limit
        degraded: str | None = None
        if self._storage_blocked():
            degraded = (
                f"the outbox {self.outbox.path} cannot be written ({self._storage_error}); "
                f"{unwritten} updates wait in memory and new lifecycle actions are refused"
            )
        elif full:
            degraded = (
                f"the outbox is full ({depth} of {self.settings.outbox_limit} undelivered); new "
                "lifecycle actions are refused until the remote takes them"
            )
        return RemoteSyncHealth(
            enabled=self.settings.enabled,
            remote=self._remote_state if self.settings.enabled else "disabled",
            last_check=self._last_check,
            last_error=self._storage_error or self._last_error,
            outbox_depth=depth,
            outbox_limit=self.settings.outbox_limit,
            outbox_full=depth >= self.settings.outbox_limit,
            oldest_undelivered_age_seconds=None
            if oldest is None
            else round(max(0.0, time.time() - oldest), 3),
            dead_letters=self.outbox.dead_letter_count(),
            outbox_unwritten=unwritten,
            degraded_reason=degraded,
        )

    def server_info(self) -> dict[str, Any]:
        """The agent's ``server`` block for ``GET /remote/config`` (no secrets in it)."""
        return self._server_info() if self._server_info is not None else {}

    def describe(self) -> dict[str, Any]:
        """The remote settings for logs and views, token and any password in the URL masked."""
        return {
            "enabled": self.settings.enabled,
            "url": self.settings.shown_url(),
            "token": mask_token(self.settings.token),
        }
