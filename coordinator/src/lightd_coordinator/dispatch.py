"""Command dispatch: deliver a command to a node's agent over HTTP and keep its result.

Delivery is ``POST http://{address}:{port}/commands`` (see :mod:`lightd_shared.dispatch`).

Never run a command twice:

- only failures that prove the request never reached the agent are retried (connection refused,
  connect timeout, no free connection): up to ``registry.max_retries`` more attempts, with
  exponential backoff and jitter, inside the command's own timeout;
- once the request may have been sent (read/write errors, timeouts, odd answers) the command is
  *not* retried: it ends ``timeout`` or ``failed`` with the reason in ``output``;
- every delivery carries ``Idempotency-Key: <command id>``, so an agent can also drop repeats;
- a client's ``Idempotency-Key`` maps to the first command id and returns that command's result;
  the same key with a different command is refused (:class:`IdempotencyKeyReused`), never
  answered with another command's result.

An agent may answer ``202`` and report later (``POST /api/v1/commands/{id}/result``); a synchronous
caller then waits for that report until the command's timeout.

With a shared registry the report may reach another replica: the waiting replica learns of it
from the ``command_result`` event on the shared log (:meth:`Dispatcher.on_event`). Whichever
final result is stored first wins (``Registry.finish_result``), so a late report and a timeout
never both count.

Over 400 lines: one idea, sending a command to nodes and collecting results (signing,
fan-out, retries, async results, Idempotency-Keys); the result store is the registry's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from lightd_coordinator.activity.context import Note, current_note
from lightd_coordinator.activity.log import ActivityLog
from lightd_coordinator.events import EventHub
from lightd_coordinator.registry.base import Registry, StoredEvent
from lightd_coordinator.security import InvalidToken, NodeTokenSigner
from lightd_coordinator.tls import TlsSettings
from lightd_shared.commands import FINAL_STATUSES, Command, CommandEcho, CommandResult
from lightd_shared.direct_http import DirectSender
from lightd_shared.dispatch import AGENT_COMMANDS_PATH, IDEMPOTENCY_HEADER, AgentCommand
from lightd_shared.durations import format_duration
from lightd_shared.nodes import NodeRecord
from lightd_shared.pacing import backoff_delay
from lightd_shared.timestamps import utcnow

__all__ = ["Dispatcher", "ReportRejected", "new_command_id"]

log = logging.getLogger(__name__)

_BACKOFF_BASE = 0.2
"""The first retry waits 0.1 to 0.2 s, doubling per retry (:func:`backoff_delay`)."""
_BACKOFF_MAX = 2.0
_CONNECT_TIMEOUT = 5.0


class IdempotencyKeyReused(Exception):
    """A client sent an ``Idempotency-Key`` it already used, with another command."""


class ReportRejected(Exception):
    """A node's result report cannot be accepted; ``status_code`` says how to answer."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def new_command_id(node_id: str) -> str:
    """``cmd_<unique>_<node>``: microseconds since the epoch plus 24 random bits."""
    return f"cmd_{time.time_ns() // 1000}{secrets.token_hex(3)}_{node_id}"


class _Unknown:
    """The caller did not read the node's dispatch key: the dispatcher looks it up."""


UNKNOWN_KEY = _Unknown()


def _log_failure(task: asyncio.Task[CommandResult]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("storing a command's result failed", exc_info=task.exception())


def _echo(command: Command, command_id: str) -> CommandEcho:
    return CommandEcho.model_validate(
        {**command.model_dump(mode="json", exclude_none=True), "id": command_id}, strict=False
    )


class Dispatcher:
    def __init__(
        self,
        *,
        registry: Registry,
        hub: EventHub,
        signer: NodeTokenSigner,
        keys: Callable[[str], Awaitable[str | None]],
        client: httpx.AsyncClient,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int,
        default_timeout: timedelta,
        result_ttl: timedelta,
        max_output: int,
        agent_url: Callable[[NodeRecord, str], str] | None = None,
        activity: ActivityLog | None = None,
    ) -> None:
        self._registry = registry
        self._hub = hub
        self._signer = signer
        self._keys = keys
        self._client = client
        # ``transport``: the one ``client`` was built with; commands are then sent straight
        # through it, skipping httpx's client layer (lightd_shared.direct_http).
        self._direct = None if transport is None else DirectSender(client, transport)
        self._max_retries = max_retries
        self._default_timeout = default_timeout
        self._result_ttl = result_ttl
        self._max_output = max_output
        self._agent_url = agent_url or TlsSettings().agent_url  # plain http by default
        self._inflight: dict[str, asyncio.Task[CommandResult]] = {}
        self._pending_writes: dict[str, asyncio.Task[None]] = {}
        """The ``pending`` record of each command being stored while it is sent (not before)."""
        self._finishing: dict[str, asyncio.Task[CommandResult]] = {}
        """Final results being stored and published after the caller has its answer."""
        self._answered: dict[str, asyncio.Event] = {}
        """Per command submitted with ``answered``: set once the caller's answer is sent (its
        final result waits for it; a reader and :meth:`close` release it earlier)."""
        self._reports: dict[str, asyncio.Future[CommandResult]] = {}
        self._watchers: dict[str, list[asyncio.Future[CommandResult]]] = {}
        """Callers waiting here for a command another replica runs (an Idempotency-Key repeat)."""
        self._lock = asyncio.Lock()
        self.finished: Counter[str] = Counter()
        self.deliveries = 0
        self._unsigned: set[str] = set()
        """Nodes whose unsigned commands were already logged (once per node)."""
        self._activity = activity
        self._origins: dict[str, Note] = {}
        """The request each running command came from (its activity log entry names it)."""

    # -- public --------------------------------------------------------------------------
    async def submit(
        self,
        node: NodeRecord,
        command: Command,
        *,
        idempotency_key: str | None = None,
        wait: bool = True,
        dispatch_key: str | _Unknown | None = UNKNOWN_KEY,
        answered: asyncio.Event | None = None,
    ) -> tuple[CommandResult, bool]:
        """Start (or find, by idempotency key) a command; return its result and whether it is new.

        With ``wait`` the result is final; without it, a ``pending`` result comes back at once.
        ``dispatch_key``: the node's key when the caller just read it with the node (the
        route does), so the hot path makes no second registry read.
        ``answered``: set by the caller once its answer is sent (it must set it, also when
        sending fails): the final result the node answered with is stored and published only
        then, so that work is off the answer's path even where storing never suspends (the
        memory registry). A reader (:meth:`get`, :meth:`settled`) and :meth:`close` release
        it earlier, so nothing waits on a client that reads its answer slowly. Without it the
        result is stored as soon as the caller resumes.

        The hot path holds no lock and waits for no registry write before the command is
        sent: the ``pending`` record is stored while the request is on its way (every later
        write of this command waits for it first, so it never overwrites a result), and a
        final answer is stored and published right after it is returned to the caller
        (:meth:`get` on this replica waits for that write).
        """
        command_id = new_command_id(node.id)
        if idempotency_key is not None:
            earlier = await self._registry.claim_idempotency_key(
                f"{node.id}\n{idempotency_key}", command_id, utcnow() + self._result_ttl
            )
            if earlier is not None:
                stored = await self._registry.get_result(earlier)
                if (
                    stored is not None
                    and stored.command is not None
                    and stored.command != _echo(command, earlier)
                ):
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency_key!r} was used for another command "
                        f"({earlier}) on node {node.id}; use a new key for a new command"
                    )
                return await self._existing(earlier, node.id, wait=wait), False
        note = current_note.get()
        if note is not None:
            if command.user:
                note.users.append(command.user)
            spec = getattr(command.params, "spec", None)
            note.server = getattr(command.params, "server", None) or getattr(spec, "id", None)
            self._origins[command_id] = note
        pending = CommandResult(
            id=command_id, node_id=node.id, command=_echo(command, command_id), status="pending"
        )
        written = asyncio.create_task(self._store(pending), name=f"store {command_id}")
        self._pending_writes[command_id] = written
        written.add_done_callback(lambda _: self._pending_writes.pop(command_id, None))
        self._reports[command_id] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._run(node, command, command_id, dispatch_key), name=command_id
        )
        self._inflight[command_id] = task
        task.add_done_callback(lambda _: self._forget(command_id))
        if answered is not None:
            self._answered[command_id] = answered
        if not wait:
            await asyncio.shield(written)  # the caller may look the id up at once
            return pending, True
        return await asyncio.shield(task), True

    async def get(self, command_id: str) -> CommandResult | None:
        await self._written(command_id)
        return await self._registry.get_result(command_id)

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout``) for the final results this replica is storing after
        their callers were answered: a reader of the activity log then finds the entry of
        a command whose answer it already has."""
        self._release_holds()  # a reader does not wait for callers still sending their answers
        finishing = [task for task in self._finishing.values() if not task.done()]
        if finishing:
            await asyncio.wait([asyncio.shield(task) for task in finishing], timeout=timeout)

    async def _written(self, command_id: str) -> None:
        """Wait for this replica's writes of the command still under way (pending, final)."""
        pending = self._pending_writes.get(command_id)
        if pending is not None:
            await asyncio.shield(pending)
        finishing = self._finishing.get(command_id)
        if finishing is not None:
            held = self._answered.get(command_id)
            if held is not None:
                # its caller may still be sending the answer (to a client that reads slowly,
                # or not at all): a reader releases the result rather than wait for that
                held.set()
            await asyncio.shield(finishing)

    def _finish_after(self, result: CommandResult) -> CommandResult:
        """Store and publish a final result once the caller has it (the answer goes first).

        A task: it runs once the caller resumes, or, when the caller passed ``answered``,
        once that is set (its answer sent). Registered at once, so :meth:`get`,
        :meth:`settled` and :meth:`close` wait for it."""
        # the request's note now: the command is forgotten (its origin with it) before this runs
        origin = self._origins.get(result.id)
        answered = self._answered.get(result.id)
        task = asyncio.create_task(
            self._finish_answered(result, origin, answered), name=f"finish {result.id}"
        )
        self._finishing[result.id] = task
        task.add_done_callback(lambda _: self._finishing.pop(result.id, None))
        task.add_done_callback(_log_failure)
        return result

    async def _finish_answered(
        self, result: CommandResult, origin: Note | None, answered: asyncio.Event | None
    ) -> CommandResult:
        if answered is not None:
            try:
                await answered.wait()
            finally:
                self._answered.pop(result.id, None)
        return await self._finish(result, origin)

    async def report(self, command_id: str, result: CommandResult) -> CommandResult:
        """A node's report for a command it accepted earlier (``POST .../result``)."""
        if result.id != command_id:
            raise ReportRejected(
                400,
                f"body id {result.id!r} does not match the command id {command_id!r} in the path",
            )
        pending = self._pending_writes.get(command_id)
        if pending is not None:  # a report that overtook the write of its pending record
            await asyncio.shield(pending)
        stored = await self._registry.get_result(command_id)
        if stored is None:
            raise ReportRejected(404, f"no command {command_id!r} is known (or it has expired)")
        if result.node_id != stored.node_id:
            raise ReportRejected(
                400,
                f"command {command_id!r} went to node {stored.node_id!r}, not {result.node_id!r}",
            )
        if stored.status in FINAL_STATUSES:
            # timeout included: the caller already has its answer and command_result went out
            raise ReportRejected(
                409, f"command {command_id!r} already ended with {stored.status!r}"
            )
        final = self._complete(result, stored.command, stored.node_id, measured=None)
        if final.status in FINAL_STATUSES:
            won = await self._finish(final)
            if won is not final:  # another replica stored a final result first
                raise ReportRejected(
                    409, f"command {command_id!r} already ended with {won.status!r}"
                )
            self._resolve(final)
        else:
            await self._store(final)
        return final

    def on_event(self, event: StoredEvent) -> None:
        """Hub listener: a ``command_result`` (maybe from another replica) ends our waits."""
        if event.type != "command_result":
            return
        try:
            data = json.loads(event.body)["data"]
            command_id = data["id"]
        except (ValueError, KeyError, TypeError):
            return
        if command_id not in self._reports and command_id not in self._watchers:
            return
        try:
            result = CommandResult.model_validate(data)
        except ValidationError:
            return
        self._resolve(result)

    def _resolve(self, result: CommandResult) -> None:
        future = self._reports.get(result.id)
        if future is not None and not future.done():
            future.set_result(result)
        for watcher in self._watchers.pop(result.id, []):
            if not watcher.done():
                watcher.set_result(result)

    async def close(self) -> None:
        """Stop waiting for nodes; commands still open end ``failed`` (not ``pending`` forever)."""
        open_ids = list(self._inflight)
        tasks = list(self._inflight.values())
        self._release_holds()  # a caller stuck sending its answer does not hold its result back
        writes = [*self._pending_writes.values(), *self._finishing.values()]
        if writes:
            await asyncio.gather(*writes, return_exceptions=True)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for command_id in open_ids:
            stored = await self._registry.get_result(command_id)
            if stored is None or stored.status in FINAL_STATUSES:
                continue
            await self._store(
                stored.model_copy(
                    update={
                        "status": "failed",
                        "output": "the coordinator stopped before the node answered; "
                        "the command may or may not have run",
                        "finished": utcnow(),
                    }
                )
            )

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    # -- internals -----------------------------------------------------------------------
    def _release_holds(self) -> None:
        """Let every held final result be stored now (see ``submit``'s ``answered``)."""
        for answered in self._answered.values():
            answered.set()

    def _forget(self, command_id: str) -> None:
        self._inflight.pop(command_id, None)
        if command_id not in self._finishing:  # ended without _finish_after: nothing waits
            self._answered.pop(command_id, None)
        self._origins.pop(command_id, None)
        future = self._reports.pop(command_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def _existing(self, command_id: str, node_id: str, *, wait: bool) -> CommandResult:
        task = self._inflight.get(command_id)
        if task is not None and wait:
            return await asyncio.shield(task)
        if task is None and wait:
            # another replica runs it (shared registry): wait for its command_result event
            watcher: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
            self._watchers.setdefault(command_id, []).append(watcher)
            try:
                stored = await self._registry.get_result(command_id)
                if stored is not None and stored.status in FINAL_STATUSES:
                    return stored
                limit = self._default_timeout
                if stored is not None and stored.command is not None:
                    limit = stored.command.params.timeout or limit
                try:
                    return await asyncio.wait_for(watcher, timeout=limit.total_seconds() + 1)
                except TimeoutError:
                    pass
            finally:
                waiting = self._watchers.get(command_id, [])
                if watcher in waiting:
                    waiting.remove(watcher)
                if not waiting:
                    self._watchers.pop(command_id, None)
        stored = await self._registry.get_result(command_id)
        if stored is None:  # claimed by a replica that has not stored it yet, or expired
            return CommandResult(id=command_id, node_id=node_id, status="pending")
        return stored

    async def _store(self, result: CommandResult) -> None:
        await self._registry.put_result(result, utcnow() + self._result_ttl)

    async def _finish(self, result: CommandResult, origin: Note | None = None) -> CommandResult:
        """Store a final result and announce it, unless one was stored first; the winner.

        ``origin``: the request the command came from, when the caller took it before the
        command was forgotten (else it is looked up)."""
        pending = self._pending_writes.get(result.id)
        if pending is not None:  # never let the pending record land after the result
            await asyncio.shield(pending)
        won = await self._registry.finish_result(result, utcnow() + self._result_ttl)
        if won is not result:
            log.info(
                "command %s already ended with %s; not replacing it with %s",
                result.id,
                won.status,
                result.status,
                extra={"command_id": result.id, "node_id": result.node_id},
            )
            return won
        self.finished[result.status] += 1
        if self._activity is not None:
            await self._activity.command(result, origin or self._origins.get(result.id))
        await self._hub.publish("command_result", result, node_id=result.node_id)
        log.info(
            "command %s on node %s: %s",
            result.id,
            result.node_id,
            result.status,
            extra={"command_id": result.id, "node_id": result.node_id, "status": result.status},
        )
        return result

    def _note_signing(self, node_id: str, *, signed: bool) -> None:
        """Say once per node (until it sends a key) that its commands go out unsigned."""
        if signed:
            self._unsigned.discard(node_id)
        elif node_id not in self._unsigned:
            self._unsigned.add(node_id)
            log.info(
                "node %s registered without a dispatch_key: its commands are sent without an "
                "Authorization header (it does not verify them); a lightd agent registers with "
                "a key, so its commands are signed",
                node_id,
                extra={"node_id": node_id},
            )

    def _cap(self, output: str) -> str:
        raw = output.encode("utf-8")
        if len(raw) <= self._max_output:
            return output
        kept = raw[: self._max_output].decode("utf-8", errors="ignore")
        return f"{kept}\n… [output truncated: {self._max_output} of {len(raw)} bytes kept]"

    def _complete(
        self,
        result: CommandResult,
        command: CommandEcho | None,
        node_id: str,
        *,
        measured: float | None,
    ) -> CommandResult:
        update: dict[str, Any] = {"output": self._cap(result.output), "node_id": node_id}
        if result.command is None:
            update["command"] = command
        if result.duration is None and measured is not None:
            update["duration"] = timedelta(milliseconds=round(measured * 1000))
        if result.finished is None and result.status in FINAL_STATUSES:
            update["finished"] = utcnow()
        return result.model_copy(update=update)

    def _ended(
        self, command_id: str, node_id: str, echo: CommandEcho, status: str, output: str, t0: float
    ) -> CommandResult:
        return CommandResult.model_validate(
            {
                "id": command_id,
                "node_id": node_id,
                "command": echo,
                "status": status,
                "output": self._cap(output),
                "duration": timedelta(milliseconds=round((time.monotonic() - t0) * 1000)),
                "finished": utcnow(),
            }
        )

    async def _run(
        self,
        node: NodeRecord,
        command: Command,
        command_id: str,
        dispatch_key: str | _Unknown | None = UNKNOWN_KEY,
    ) -> CommandResult:
        started = time.monotonic()
        timeout = command.params.timeout or self._default_timeout
        try:
            result = await self._deliver(node, command, command_id, started, timeout, dispatch_key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a command pending because of a bug here
            log.exception("dispatch of %s failed unexpectedly", command_id)
            result = self._ended(
                command_id,
                node.id,
                _echo(command, command_id),
                "failed",
                f"coordinator error while dispatching: {type(exc).__name__}",
                started,
            )
            result = await self._finish(result)
        return result

    async def _deliver(
        self,
        node: NodeRecord,
        command: Command,
        command_id: str,
        started: float,
        timeout: timedelta,
        dispatch_key: str | _Unknown | None = UNKNOWN_KEY,
    ) -> CommandResult:
        echo = _echo(command, command_id)
        url = self._agent_url(node, AGENT_COMMANDS_PATH)
        body = AgentCommand.model_validate(
            {**echo.model_dump(mode="json", exclude_none=True), "node_id": node.id}, strict=False
        ).model_dump(mode="json", exclude_none=True)
        deadline = started + timeout.total_seconds()
        limit = format_duration(timeout)
        attempt = 0

        async def end(status: str, output: str) -> CommandResult:
            result = self._ended(command_id, node.id, echo, status, output, started)
            return await self._finish(result)

        key = await self._keys(node.id) if isinstance(dispatch_key, _Unknown) else dispatch_key
        self._note_signing(node.id, signed=key is not None)

        def sign() -> str | None:
            # a node registered without a key chose not to verify: no Authorization header
            return None if key is None else self._signer.authorization(node.id, command_id, key)

        try:
            # signed once up front (a node that cannot be signed for fails before any attempt)
            # and that token is the first attempt's
            authorization = sign()
        except InvalidToken as exc:
            return await end("failed", str(exc))
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return await end("timeout", f"node {node.id} was not reached within {limit}")
            if attempt > 1:
                # a fresh token per retry: retries may outlive a short-lived one
                try:
                    authorization = sign()
                except InvalidToken as exc:
                    return await end("failed", str(exc))
            headers = {IDEMPOTENCY_HEADER: command_id}
            if authorization is not None:
                headers["Authorization"] = authorization
            self.deliveries += 1
            try:
                limits = httpx.Timeout(remaining, connect=min(remaining, _CONNECT_TIMEOUT))
                if self._direct is not None and self._direct.usable():
                    response = await self._direct.send(
                        "POST", httpx.URL(url), headers=headers, timeout=limits.as_dict(), json=body
                    )
                else:
                    response = await self._client.post(
                        url, json=body, headers=headers, timeout=limits
                    )
            except httpx.InvalidURL as exc:
                # not an HTTPError: nothing was sent. Registrations check the address now; a
                # record stored before that check may still hold one.
                log.warning(
                    "command %s to node %s not sent: %s is not a valid URL (%s); re-register "
                    "the node or PUT a valid address",
                    command_id,
                    node.id,
                    url[:200],
                    exc,
                    extra={"command_id": command_id, "node_id": node.id},
                )
                return await end(
                    "failed",
                    f"node {node.id}'s address {node.address[:200]!r} does not make a valid URL "
                    f"({exc}); fix it with PUT /api/v1/nodes/{node.id}",
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left: safe to try again.
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt > self._max_retries:
                    return await end(
                        "failed",
                        f"node {node.id} unreachable at {url} after {attempt} attempt(s): {reason}",
                    )
                log.info(
                    "node %s unreachable (%s); retry %d of %d",
                    node.id,
                    reason,
                    attempt,
                    self._max_retries,
                    extra={"command_id": command_id, "node_id": node.id},
                )
                pause = min(
                    backoff_delay(attempt, base=_BACKOFF_BASE, cap=_BACKOFF_MAX),
                    max(0.0, deadline - time.monotonic()),
                )
                await asyncio.sleep(pause)
                continue
            except httpx.TimeoutException:
                return await end(
                    "timeout", f"node {node.id} did not answer within {limit} (params.timeout)"
                )
            except httpx.HTTPError as exc:
                return await end(
                    "failed",
                    f"connection to node {node.id} broke after the command was sent "
                    f"({type(exc).__name__}); not retried so that it never runs twice",
                )
            return await self._answer(node, command_id, echo, response, started, deadline, limit)

    async def _answer(
        self,
        node: NodeRecord,
        command_id: str,
        echo: CommandEcho,
        response: httpx.Response,
        started: float,
        deadline: float,
        limit: str,
    ) -> CommandResult:
        async def end(status: str, output: str) -> CommandResult:
            result = self._ended(command_id, node.id, echo, status, output, started)
            return await self._finish(result)

        if response.status_code not in (200, 201, 202):
            text = response.text[:500]
            return await end(
                "failed", f"node {node.id} refused the command: HTTP {response.status_code}: {text}"
            )
        try:
            answer = CommandResult.model_validate_json(response.content)
        except ValidationError as exc:
            if response.status_code != 202:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                return await end("failed", f"node {node.id} answered an invalid result: {problems}")
            answer = CommandResult(id=command_id, node_id=node.id, status="running")
        if answer.id != command_id:
            log.warning(
                "node %s answered for command %r instead of %r; keeping the coordinator's id",
                node.id,
                answer.id,
                command_id,
            )
            answer = answer.model_copy(update={"id": command_id})
        if answer.status in FINAL_STATUSES:
            final = self._complete(answer, echo, node.id, measured=time.monotonic() - started)
            return self._finish_after(final)
        # Accepted: the node reports the result later. Wait for it within the timeout.
        future = self._reports.get(command_id)
        if future is None:  # pragma: no cover - created in submit
            return await end("failed", "internal error: no report slot")
        if not future.done():
            pending = self._pending_writes.get(command_id)
            if pending is not None:
                await asyncio.shield(pending)
            await self._store(answer.model_copy(update={"node_id": node.id, "command": echo}))
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            return await end(
                "timeout", f"node {node.id} accepted the command but reported no result in {limit}"
            )


"""Bracket a bare IPv6 address for use in a URL."""
