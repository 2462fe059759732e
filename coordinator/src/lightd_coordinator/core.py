"""The running coordinator's parts, built once per app and reached by routes through deps.

Also home of the background tasks (liveness sweep, health probes, result expiry), each a
drift-free ticker: the next run starts one period after the previous *start*, and a failing
run is logged and never ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx

from lightd_coordinator import __version__
from lightd_coordinator.activity import ActivityLog, create_activity_store
from lightd_coordinator.config import Settings
from lightd_coordinator.dispatch import Dispatcher
from lightd_coordinator.events import EventHub
from lightd_coordinator.fleet import Fleet
from lightd_coordinator.history import HistoryKeeper, create_history
from lightd_coordinator.logstream import LogFollower
from lightd_coordinator.registry import Registry, RegistryUnavailable, create_registry
from lightd_coordinator.security import NodeKeySigner, NodeTokenSigner, TokenVerifier
from lightd_shared.pacing import ticker_wait
from lightd_shared.timestamps import utcnow

__all__ = ["Coordinator"]

log = logging.getLogger(__name__)

_PROBE_CONCURRENCY = 32


class Coordinator:
    """Settings, registry, event hub, fleet, dispatcher and the background tasks."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        signer: NodeTokenSigner | None = None,
    ) -> None:
        self.settings = settings
        self.version = __version__
        self.started = time.monotonic()
        self._bad_health_urls: set[tuple[str, str]] = set()
        """(node id, health_url) pairs already logged as unparseable (one line each)."""
        self.registry = registry or create_registry(settings.registry)
        self.hub = EventHub(
            self.registry,
            history_size=settings.websocket.history_size,
            queue_size=settings.websocket.queue_size,
            state=self._snapshot,
        )
        self.fleet = Fleet(self.registry, self.hub, node_timeout=settings.registry.node_timeout)
        self.verifier = TokenVerifier(
            static_token=settings.server.auth_token,
            jwt_secret=settings.auth.jwt_secret,
            agent_token=settings.auth.agent_token,
        )
        # The transport is made here (as the client would make it: no proxies, trust_env
        # off) so that the dispatcher can send commands straight through it
        # (lightd_shared.direct_http).
        verify = settings.server.tls.client_verify()
        self.transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
        self.client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            verify=verify,
            headers={"User-Agent": f"lightd-coordinator/{__version__}"},
            transport=self.transport,
        )
        self.activity = ActivityLog(create_activity_store(settings.registry), settings.activity)
        self.dispatcher = Dispatcher(
            registry=self.registry,
            hub=self.hub,
            signer=signer
            or NodeKeySigner(expires_in=settings.auth.dispatch_token_expiry.total_seconds()),
            keys=self.fleet.dispatch_key,
            client=self.client,
            transport=self.transport,
            max_retries=settings.registry.max_retries,
            default_timeout=settings.registry.command_timeout,
            result_ttl=settings.registry.result_ttl,
            max_output=settings.registry.max_output,
            agent_url=settings.server.tls.agent_url,
            activity=self.activity,
        )
        self.hub.add_listener(self.dispatcher.on_event)
        self.history = HistoryKeeper(create_history(settings.registry), settings.registry)
        self.follower = LogFollower(self.client, agent_url=settings.server.tls.agent_url)
        self._tasks: list[asyncio.Task[None]] = []
        self.replica = f"{socket.gethostname()}:{secrets.token_hex(4)}"
        """This process's name among the replicas sharing a registry (the sweep lease holder)."""
        self.sweeping = False
        """Whether this replica held the sweep lease at its last try."""
        self.fleet_size = 0
        """Nodes registered, as last counted (every ``health_check_interval``)."""

    async def _snapshot(self, node_id: str | None) -> dict[str, object]:
        return await self.fleet.snapshot(node_id)

    async def start(self) -> None:
        await self.registry.open()
        await self.history.store.open()
        await self.activity.store.open()
        await self.hub.start()
        interval = self.settings.registry.health_check_interval
        expiry = min(self.settings.registry.result_ttl, timedelta(seconds=60))
        self._tasks = [
            asyncio.create_task(self._every(interval, self._sweep, "liveness sweep")),
            asyncio.create_task(self._every(interval, self.probe_health, "health probe")),
            asyncio.create_task(self._every(expiry, self._expire, "result expiry")),
            asyncio.create_task(self._every(interval, self._count, "fleet count")),
        ]
        log.info(
            "coordinator %s started: registry %s, node timeout %s, health checks every %s",
            __version__,
            self.registry.provider,
            self.settings.registry.node_timeout,
            interval,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.dispatcher.close()
        await self.hub.close()
        await self.client.aclose()
        await self.history.store.close()
        await self.activity.store.close()
        await self.registry.close()

    async def _every(
        self, period: timedelta, work: Callable[[], Awaitable[object]], name: str
    ) -> None:
        step = period.total_seconds()
        unavailable = False
        while True:
            before = time.monotonic()
            try:
                await work()
                if unavailable:
                    log.info("%s runs again: the registry is back", name)
                unavailable = False
            except asyncio.CancelledError:
                raise
            except RegistryUnavailable as exc:
                if not unavailable:  # one line per outage, not one per period
                    log.warning("%s paused: %s", name, exc)
                unavailable = True
            except Exception:
                log.exception("%s failed; it runs again in %ss", name, step)
            await asyncio.sleep(ticker_wait(step, before, time.monotonic()))

    @property
    def stretch(self) -> float:
        """How much longer than ``registry.heartbeat_interval`` each node waits between beats.

        1 up to ``max_heartbeat_rate * heartbeat_interval`` nodes; above, the factor that keeps
        the fleet's heartbeats at ``max_heartbeat_rate`` per second.
        """
        registry = self.settings.registry
        allowed = registry.max_heartbeat_rate * registry.heartbeat_interval.total_seconds()
        return max(1.0, self.fleet_size / allowed)

    @property
    def next_heartbeat(self) -> float | None:
        """Seconds an agent should wait before its next heartbeat; ``None``: its own interval."""
        stretch = self.stretch
        if stretch <= 1.0:
            return None
        return self.settings.registry.heartbeat_interval.total_seconds() * stretch

    async def _count(self) -> None:
        self.fleet_size, _ = await self.registry.count_nodes()
        timeout = self.settings.registry.node_timeout * self.stretch
        if timeout != self.fleet.node_timeout:
            log.info(
                "fleet of %d nodes: heartbeats every %.1fs, node timeout %s "
                "(registry.max_heartbeat_rate %g/s)",
                self.fleet_size,
                self.next_heartbeat or self.settings.registry.heartbeat_interval.total_seconds(),
                timeout,
                self.settings.registry.max_heartbeat_rate,
            )
            self.fleet.node_timeout = timeout

    @property
    def lease_ttl(self) -> float:
        """How long the sweep lease lasts unrenewed: three health-check intervals."""
        return 3 * self.settings.registry.health_check_interval.total_seconds()

    async def _hold_sweep_lease(self) -> bool:
        held = await self.registry.hold_lease("sweep", self.replica, self.lease_ttl)
        if held != self.sweeping and self.registry.shared:
            log.info(
                "replica %s %s the liveness sweep",
                self.replica,
                "now runs" if held else "no longer runs",
            )
        self.sweeping = held
        return held

    async def _sweep(self) -> None:
        # with a shared registry one replica at a time sweeps and probes (the lease holder)
        if await self._hold_sweep_lease():
            await self.fleet.sweep()

    async def _expire(self) -> None:
        gone = await self.registry.purge_results(utcnow())
        if gone:
            log.debug("forgot %d expired command results", gone)
        samples = await self.history.expire()
        if samples:
            log.debug("forgot %d stats samples older than registry.stats_retention", samples)
        entries = await self.activity.expire()
        if entries:
            log.debug("forgot %d activity entries older than activity.retention", entries)

    async def probe_health(self) -> None:
        """GET every node's ``health_url``; a 2xx answer counts as a heartbeat.

        Shared: only the replica holding the sweep lease probes (one probe per node).
        """
        if self.registry.shared and not self.sweeping:
            return
        targets = await self.registry.health_targets()
        if not targets:
            return
        limit = asyncio.Semaphore(_PROBE_CONCURRENCY)
        timeout = min(self.settings.registry.health_check_interval.total_seconds(), 5.0)

        async def probe(node_id: str, url: str) -> None:
            async with limit:
                try:
                    response = await self.client.get(url, timeout=timeout)
                except httpx.InvalidURL as exc:
                    # not an HTTPError: the URL never becomes a request. Registrations check
                    # health_url now; a record stored before that check may still hold one.
                    if (node_id, url) not in self._bad_health_urls:
                        self._bad_health_urls.add((node_id, url))
                        log.warning(
                            "health probe of node %s skipped: health_url %r is not a valid URL "
                            "(%s); re-register the node or PUT a valid health_url",
                            node_id,
                            url[:200],
                            exc,
                            extra={"node_id": node_id},
                        )
                    return
                except httpx.HTTPError as exc:
                    log.debug("health probe of node %s failed: %s", node_id, type(exc).__name__)
                    return
                if response.is_success:
                    await self.fleet.heartbeat(node_id, None)
                else:
                    log.debug("health probe of node %s: HTTP %s", node_id, response.status_code)

        await asyncio.gather(*(probe(node_id, url) for node_id, url in targets))
