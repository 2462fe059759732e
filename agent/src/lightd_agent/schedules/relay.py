"""Schedule events to the coordinator's ``/ws``: each one relayed, in order, while enrolled.

With ``coordinator.enabled``, every ``schedule_*`` event the bus publishes is queued (a
durable listener: nothing is missed between two sends) and sent to
``POST /api/v1/nodes/{id}/schedule-events`` (``lightd_shared.events.RelayedScheduleEvent``) with the
enrolment's credentials (the coordinator token and this node's proof), oldest first. A
coordinator that does not answer, or answers 404 (not registered yet), 429 or 5xx, is retried
with backoff; an event it refuses for good (another 4xx) is dropped and logged. The queue holds
at most :data:`QUEUE_LIMIT` events: when the coordinator stays away longer, the oldest go
first (the agent's own ``GET /events`` and each schedule's ``last_result`` still have them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from lightd_agent import __version__
from lightd_agent.events import LifecycleEvent
from lightd_agent.security import NodeProofSigner
from lightd_agent.tls import outbound_verify
from lightd_agent.wakeup import set_event_threadsafe
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.events import RelayedScheduleEvent, RelayedScheduleUpdate
from lightd_shared.pacing import backoff_delay
from lightd_shared.schedules import SCHEDULE_EVENT_KINDS, ScheduleEvent

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["QUEUE_LIMIT", "ScheduleRelay", "schedule_relay_subsystem"]

log = logging.getLogger("lightd_agent.schedules")

QUEUE_LIMIT = 1000
_RETRY = frozenset({404, 408, 429})


class ScheduleRelay:
    """The queue of schedule events for the coordinator, and the loop that sends them."""

    def __init__(self, agent: Agent, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.agent = agent
        self._transport = transport
        self._queue: deque[RelayedScheduleEvent] = deque(maxlen=QUEUE_LIMIT)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proofs = NodeProofSigner(agent.dispatch_key, agent.config.node.id)
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self.sent = 0

    def on_event(self, event: LifecycleEvent) -> None:
        """Durable listener: queue a schedule event (any thread, never blocks)."""
        if event.kind not in SCHEDULE_EVENT_KINDS or event.data is None:
            return
        try:
            relayed = RelayedScheduleEvent.model_validate(
                {
                    "type": event.kind,
                    "timestamp": event.timestamp,
                    "data": RelayedScheduleUpdate(
                        server=event.server, event=ScheduleEvent.model_validate_json(event.data)
                    ),
                },
                strict=False,
            )
        except ValueError:
            log.exception("schedule event %s of %s not relayed", event.kind, event.server)
            return
        if len(self._queue) == QUEUE_LIMIT:
            log.warning("schedule events for the coordinator: queue full, the oldest dropped")
        self._queue.append(relayed)
        set_event_threadsafe(self._loop, self._wake)

    def _base(self) -> str:
        enrolment = self.agent.enrolment
        if enrolment is not None:
            return enrolment.base
        return self.agent.config.coordinator.bases()[0]

    def _headers(self) -> dict[str, str]:
        headers = {NODE_PROOF_HEADER: self._proofs()}
        token = self.agent.config.coordinator.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="schedule-events-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        node = self.agent.config.node.id
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=10.0,
            trust_env=False,
            verify=outbound_verify(),
            headers={"User-Agent": f"lightd/{__version__}"},
        ) as client:
            attempt = 0
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                event = self._queue[0]
                url = f"{self._base().rstrip('/')}/api/v1/nodes/{node}/schedule-events"
                try:
                    response = await client.post(
                        url,
                        content=event.model_dump_json(),
                        headers={**self._headers(), "Content-Type": "application/json"},
                    )
                    retry = response.status_code in _RETRY or response.status_code >= 500
                    reason = f"answered {response.status_code}"
                except httpx.HTTPError as exc:
                    retry, reason = True, f"{type(exc).__name__}: {exc}"
                if retry:
                    attempt += 1
                    await asyncio.sleep(backoff_delay(attempt, base=0.2, cap=10.0, rng=self._rng))
                    continue
                attempt = 0
                if self._queue and self._queue[0] is event:
                    self._queue.popleft()
                if response.status_code >= 400:
                    log.warning("the coordinator refused a schedule event (%s); dropped", reason)
                else:
                    self.sent += 1


@asynccontextmanager
async def schedule_relay_subsystem(agent: Agent) -> AsyncIterator[ScheduleRelay | None]:
    """Relay schedule events for the life of the agent when ``coordinator.enabled``."""
    if not agent.config.coordinator.enabled:
        yield None
        return
    relay = ScheduleRelay(agent)
    detach = agent.bus.add_listener(relay.on_event)
    await relay.start()
    try:
        yield relay
    finally:
        detach()
        await relay.stop()
