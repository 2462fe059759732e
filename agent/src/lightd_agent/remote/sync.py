"""Remote sync: lifecycle events -> durable outbox -> ``POST {url}/update``, in order, until acked.

:class:`RemoteSync` is a small facade over the four ideas, each in its own module:

- :mod:`.journal`      the bus's durable listener (the outbox write) and gate (503 while full
                       or unwritable);
- :mod:`.delivery`     the delivery loop and :func:`~.delivery.classify`, the response policy;
- :mod:`.health`       the health loop;
- :mod:`.config_sync`  config pull and push;

with the pause state as values in :mod:`.pause`. ``POST /remote/config/reload`` calls
:meth:`RemoteSync.reload`, which re-reads the settings and restarts the loops with them: no
agent restart needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.remote.client import RemoteClient
from lightd_agent.remote.config_sync import ConfigSync, RemoteCallFailed, RemoteDisabled
from lightd_agent.remote.delivery import Delivery
from lightd_agent.remote.health import TOKEN_HINT, HealthCheck
from lightd_agent.remote.journal import Journal
from lightd_agent.remote.outbox import Outbox
from lightd_agent.remote.pause import RemoteState
from lightd_agent.remote.proof import CoordinatorProof
from lightd_agent.state import StateStore
from lightd_agent.wakeup import set_event_threadsafe
from lightd_shared.remote import (
    AppliedContainer,
    ConfigDocument,
    ConfigPull,
    DeadLetter,
    RemoteSettings,
    RemoteSyncHealth,
)
from lightd_shared.tokens import mask_token

__all__ = ["OUTBOX_FILE", "TOKEN_HINT", "RemoteCallFailed", "RemoteDisabled", "RemoteSync"]

log = logging.getLogger("lightd_agent.remote")

OUTBOX_FILE = "remote-outbox.sqlite3"


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
        self.state_dir = state_dir
        self.outbox = Outbox(state_dir / outbox_file)
        self._coordinator_proof = coordinator_proof
        self._reload_settings = reload_settings
        self._server_info = server_info
        self._transport = transport
        self._client: RemoteClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._apply_lock = asyncio.Lock()
        self._detach: list[Callable[[], None]] = []
        self._bus: EventBus | None = None

        self.journal = Journal(self.outbox, lambda: self.settings, state_dir, self._wake_up)
        self.delivery = Delivery(
            self.outbox,
            self.journal,
            lambda: self.settings,
            lambda: self._client,
            retry_base=retry_base,
        )
        self.health = HealthCheck(lambda: self.settings, lambda: self._client, self._on_ok)
        self.configs = ConfigSync(
            state_dir,
            self._require_client,
            config_document=config_document,
            apply_config=apply_config,
        )

    # -- wiring --------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        """Become the bus's durable listener and gate, after writing to the outbox what a state
        file holds ahead of it (a kill between the two writes of a change)."""
        self.journal.replay(StateStore(self.state_dir).load_all())
        self._bus = bus
        self._detach.append(bus.add_batch_listener(self.journal.record_many))
        self._detach.append(bus.add_gate(self))

    def detach(self) -> None:
        while self._detach:
            self._detach.pop()()

    async def start(self) -> None:
        """Start the health and delivery loops (when enabled); pending updates go out at once."""
        self._loop = asyncio.get_running_loop()
        self.journal.check_bound()
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
        self.delivery.pause.clear()
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
            asyncio.create_task(self.health.loop(), name="remote-health"),
            asyncio.create_task(self.delivery.loop(), name="remote-delivery"),
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
        self.journal.flush_at_exit()
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
            self.health.forget()
            await self.start()

    # -- the durable listener and the gate ------------------------------------------------

    def record(self, event: LifecycleEvent) -> None:
        """Durable listener: commit the event's update to the outbox before publish returns."""
        self.journal.record(event)

    def refusal(self) -> str | None:
        """Gate: why new lifecycle actions must wait (answered 503), or ``None``."""
        return self.journal.refusal()

    def _wake_up(self) -> None:
        set_event_threadsafe(self._loop, self.delivery.wake)

    # -- health ----------------------------------------------------------------------------

    async def check_health(self) -> bool:
        return await self.health.check()

    def _on_ok(self, came_back: bool) -> None:
        """The remote answers its health check: retry everything now.

        This ends a ``Retry-After`` pause too: a remote that says it is healthy is ready for
        updates, and a remote that keeps answering 503 only sets a new (capped) pause.
        """
        if came_back or self.delivery.pause.kind is not None:
            self.delivery.resume()

    # -- operator actions ----------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        return self.outbox.dead_letters()

    def replay(self, dead_letter_id: int) -> bool:
        """Queue a dead letter again (same sequence and key); ``False`` if there is none."""
        if not self.outbox.replay(dead_letter_id):
            return False
        log.info("dead letter %d queued again for the remote", dead_letter_id)
        self.journal.check_bound()
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
        return await self.configs.pull(apply=apply)

    def config_document(self) -> ConfigDocument:
        return self.configs.document()

    async def push_config(self) -> ConfigDocument:
        return await self.configs.push()

    # -- health snapshot -----------------------------------------------------------------

    def snapshot(self) -> RemoteSyncHealth:
        """Remote health, outbox depth, oldest undelivered age and dead letters, for /health.

        ``outbox_depth`` counts every update not yet delivered, including those of changes
        already visible in the servers' state that the writer thread is committing now, so a
        client that saw a state and then reads ``outbox_depth == 0`` knows its update arrived.
        """
        # the changes on their way first (see EventBus.unpersisted), then the outbox
        on_the_way = self._bus.unpersisted() if self._bus is not None else 0
        oldest = self.outbox.oldest_created_at()
        stored = self.outbox.depth()
        depth = stored + (on_the_way if self.settings.enabled else 0)
        journal = self.journal
        unwritten = len(journal.unwritten)
        full = self.settings.enabled and stored >= self.settings.outbox_limit
        degraded: str | None = None
        if journal.storage_blocked():
            degraded = (
                f"the outbox {self.outbox.path} cannot be written ({journal.storage_error}); "
                f"{unwritten} updates wait in memory and new lifecycle actions are refused"
            )
        elif full:
            degraded = (
                f"the outbox is full ({stored} of {self.settings.outbox_limit} undelivered); new "
                "lifecycle actions are refused until the remote takes them"
            )
        state: RemoteState = self.health.state
        return RemoteSyncHealth(
            enabled=self.settings.enabled,
            remote=state.value if self.settings.enabled else "disabled",
            last_check=self.health.last_check,
            last_error=journal.storage_error or self.health.last_error,
            outbox_depth=depth,
            outbox_limit=self.settings.outbox_limit,
            outbox_full=stored >= self.settings.outbox_limit,
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
