"""Enrolment with a coordinator: register on start, heartbeat with services, inactive on exit.

With ``coordinator.enabled`` the agent, for as long as it runs:

1. registers (``POST /api/v1/nodes``) with its id, name, labels, ``provider: docker``, the
   address and port the coordinator reaches it at (``coordinator.advertise_*``), capabilities
   ``{"docker": true, "exec": <commands.allow_exec>}``, its ``/health`` URL, its version and
   this node's dispatch key (write-only on the coordinator; it signs our commands with it);
2. heartbeats (``POST /api/v1/nodes/{id}/heartbeat``) every ``coordinator.heartbeat_interval``
   (drift-free) with its services: every running server's published ports. A lifecycle event
   brings the next heartbeat forward, so ``GET /api/v1/services`` follows the fleet closely;
3. registers again when a heartbeat answers ``404`` (a coordinator restarted with a memory
   registry forgot us);
4. never gives up: when the coordinator is down or refuses, it logs what to do and retries with
   backoff (capped at the heartbeat interval). With several replicas (``coordinator.url`` and
   ``coordinator.urls``) it stays with the one that answers and, when that one stops answering
   (no answer, or a 5xx), moves at once to the next in the list; backoff starts only after
   every replica failed in a row. Replicas share one fleet, so no new registration is needed
   (a replica that does not know the node answers 404, and the agent registers there);
5. waits longer between heartbeats when the coordinator's answer says so
   (``X-Lightd-Next-Heartbeat``: a large fleet, see the coordinator's
   ``registry.max_heartbeat_rate``), never shorter than its own interval;
6. on a clean shutdown, sends a last heartbeat with ``status: inactive``.

Every call carries ``Authorization: Bearer <coordinator.token>`` (the coordinator's
``auth.agent_token``, which lets a new node enrol) and ``X-Lightd-Node-Proof`` (a short-lived
JWT signed with the dispatch key: once enrolled, only the holder of that key speaks for this node
id). Neither token nor key is ever logged.

Over 400 lines: one idea, the agent's membership of a coordinator (register, heartbeat,
fail-over between coordinator.urls, services reporting) as one loop and its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from lightd_agent import __version__
from lightd_agent.config import AgentConfig
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.lifecycle import ServerManager
from lightd_agent.security import NodeProofSigner
from lightd_agent.tls import outbound_verify, tls_hint
from lightd_agent.wakeup import set_event_threadsafe
from lightd_shared.dispatch import NEXT_HEARTBEAT_HEADER, NODE_PROOF_HEADER
from lightd_shared.nodes import Heartbeat, NodeRegistration
from lightd_shared.pacing import backoff_delay, ticker_wait, url_host
from lightd_shared.remote import mask_url
from lightd_shared.services import Service
from lightd_shared.timestamps import utcnow

if TYPE_CHECKING:
    from lightd_agent.core import Agent

__all__ = ["Enrolment", "coordinator_subsystem", "services_of"]

log = logging.getLogger("lightd_agent.enrolment")

_BACKOFF_START = 0.5


def advertise_address(config: AgentConfig) -> str:
    """Where the coordinator reaches this agent: the configured address, else the host name."""
    return config.coordinator.advertise_address or socket.gethostname()


def services_address(config: AgentConfig) -> str:
    """Where published ports are reachable: the Docker host, by default the advertised address."""
    return config.coordinator.services_address or advertise_address(config)


def advertise_port(config: AgentConfig) -> int:
    return config.coordinator.advertise_port or config.server.port


_url_host = url_host


def services_of(manager: ServerManager, address: str) -> list[Service]:
    """One service per published port of every running server (id: the server id, or
    ``<server>-<container port>`` when it publishes several)."""
    services: list[Service] = []
    for server in sorted(manager.servers.values(), key=lambda s: s.id):
        if server.state != "running":
            continue
        ports = [p for p in server.published if p.host is not None]
        for mapping in ports:
            assert mapping.host is not None
            services.append(
                Service(
                    id=server.id if len(ports) == 1 else f"{server.id}-{mapping.container}",
                    name=server.id,
                    type=mapping.protocol,
                    status=server.state,
                    port=mapping.host,
                    endpoint=f"{mapping.protocol}://{_url_host(address)}:{mapping.host}",
                )
            )
    return services


class Enrolment:
    """The registration and heartbeat loop, and its state for ``GET /health``."""

    def __init__(
        self,
        config: AgentConfig,
        manager: ServerManager,
        dispatch_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self._key = dispatch_key
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._rng = random.Random()
        self._proofs = NodeProofSigner(dispatch_key, config.node.id)
        self.registered = False
        self._current = 0
        """Index into ``coordinator.bases()`` of the replica in use."""
        self._missed = 0
        """Replicas that failed in a row since the last answer (backoff once all did)."""
        self._retry_now = False
        self._told: float | None = None
        """Seconds the coordinator asked us to wait between heartbeats (a large fleet)."""
        self.last_heartbeat: datetime | None = None
        self.last_error: str | None = None

    # -- wiring --------------------------------------------------------------------------
    def on_event(self, event: LifecycleEvent) -> None:
        """Bus listener: a server changed, so report the services soon (thread-safe).

        Backup and restore events change no service (a restore's stop and start come as their
        own events), so their progress does not turn into a heartbeat a second."""
        if event.kind.startswith(("backup_", "restore_")):
            return
        set_event_threadsafe(self._loop, self._wake)

    @property
    def base(self) -> str:
        """The coordinator replica in use (``url`` first, then ``urls`` in order)."""
        bases = self.config.coordinator.bases()
        return bases[self._current % len(bases)]

    def _fail_over(self) -> bool:
        """Move to the next replica; whether one not yet tried in this round is left."""
        bases = self.config.coordinator.bases()
        self._missed += 1
        if len(bases) < 2:
            return False
        was = self.base
        self._current = (self._current + 1) % len(bases)
        log.warning(
            "coordinator replica %s stopped answering; failing over to %s",
            mask_url(was),
            mask_url(self.base),
        )
        return self._missed < len(bases)

    @property
    def interval(self) -> float:
        """``coordinator.heartbeat_interval``, or longer when the coordinator asks for it."""
        own = self.config.coordinator.heartbeat_interval.total_seconds()
        return own if self._told is None else max(own, self._told)

    def _headers(self) -> dict[str, str]:
        headers = {NODE_PROOF_HEADER: self._node_proof()}
        token = self.config.coordinator.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _node_proof(self) -> str:
        return self._proofs()

    def registration(self) -> NodeRegistration:
        config = self.config
        address = advertise_address(config)
        port = advertise_port(config)
        scheme = "https" if config.server.tls.https else "http"  # the coordinator follows it
        return NodeRegistration.model_validate(
            {
                "id": config.node.id,
                "name": config.node.name or config.node.id,
                "provider": "docker",
                "status": "active",
                "address": address,
                "port": port,
                "labels": dict(config.node.labels),
                "capabilities": {"docker": True, "exec": config.commands.allow_exec},
                "health_url": f"{scheme}://{_url_host(address)}:{port}/health",
                "version": __version__,
                "dispatch_key": self._key,
            },
            strict=False,
        )

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        timeout = max(2.0, min(10.0, self.interval))
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=timeout,
            trust_env=False,
            verify=outbound_verify(),
            headers={"User-Agent": f"lightd/{__version__}"},
        )
        log.info(
            "enrolling with the coordinator at %s as node %s (reached at %s:%s)",
            ", ".join(mask_url(base) for base in self.config.coordinator.bases()),
            self.config.node.id,
            advertise_address(self.config),
            advertise_port(self.config),
        )
        self._task = asyncio.create_task(self._run(), name="coordinator-enrolment")

    async def stop(self) -> None:
        """End the loop, then tell the coordinator this node is going away (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.registered:
                response = await client.post(
                    self.config.coordinator.endpoint(
                        f"api/v1/nodes/{self.config.node.id}/heartbeat", self.base
                    ),
                    json=Heartbeat(status="inactive", services=[]).model_dump(mode="json"),
                    headers=self._headers(),
                    timeout=2.0,
                )
                if response.is_success:
                    log.info("told the coordinator this node is going inactive")
        except httpx.HTTPError as exc:
            log.warning(
                "could not tell the coordinator this node is going inactive (%s); it will "
                "mark it inactive after its node_timeout",
                type(exc).__name__,
            )
        finally:
            await client.aclose()

    def snapshot(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "url": mask_url(self.base),
            "urls": [mask_url(base) for base in self.config.coordinator.bases()],
            "registered": self.registered,
            "last_heartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
            "last_error": self.last_error,
        }

    # -- the loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            self._wake.clear()
            try:
                ok = await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end enrolment for good
                log.exception("coordinator heartbeat crashed; trying again")
                self.last_error = f"{type(exc).__name__}: {exc}"
                ok = False
            if ok:
                failures = 0
                wait = ticker_wait(self.interval, began, loop.time())
            elif self._retry_now:
                wait = 0.0  # the next replica, at once
            else:
                failures += 1
                wait = backoff_delay(
                    failures, base=_BACKOFF_START, cap=self.interval, rng=self._rng
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def beat(self) -> bool:
        """Register if needed, then heartbeat once; whether both worked."""
        client = self._client
        self._retry_now = False
        if client is None:
            return False
        coordinator = self.config.coordinator
        base = self.base
        try:
            if not self.registered:
                response = await client.post(
                    coordinator.endpoint("api/v1/nodes", base),
                    json=self.registration().model_dump(mode="json") | {"dispatch_key": self._key},
                    headers=self._headers(),
                )
                if not response.is_success:
                    return self._refused("registration", response)
                self.registered = True
                log.info(
                    "registered with the coordinator at %s as node %s",
                    mask_url(base),
                    self.config.node.id,
                )
            beat = Heartbeat(
                status="active",
                services=services_of(self.manager, services_address(self.config)),
            )
            response = await client.post(
                coordinator.endpoint(f"api/v1/nodes/{self.config.node.id}/heartbeat", base),
                json=beat.model_dump(mode="json"),
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self._failed(f"coordinator at {mask_url(base)} unreachable ({reason}){tls_hint(exc)}")
            self._retry_now = self._fail_over()
            return False
        if response.status_code == 404:
            log.warning(
                "the coordinator does not know node %s (it restarted?); registering again",
                self.config.node.id,
            )
            self.registered = False
            self._wake.set()  # register at once, not after a whole interval
            return True
        if not response.is_success:
            return self._refused("heartbeat", response)
        if self.last_error is not None:
            log.info("coordinator at %s reachable again", mask_url(base))
        self._missed = 0
        self._told = _seconds(response.headers.get(NEXT_HEARTBEAT_HEADER))
        self.last_error = None
        self.last_heartbeat = utcnow()
        return True

    def _refused(self, what: str, response: httpx.Response) -> bool:
        if response.status_code == 401:
            reason = (
                f"the coordinator refused the {what} with HTTP {response.status_code}: set "
                "coordinator.token (LIGHTD_COORDINATOR__TOKEN) to the coordinator's "
                "auth.agent_token"
            )
        else:  # 403/409 on a node proof, 422, 5xx: the coordinator's own words say what to do
            excerpt = _detail(response)
            reason = (
                f"the coordinator refused the {what} with HTTP {response.status_code}: {excerpt}"
            )
        self._failed(reason)
        if response.status_code >= 500:  # this replica cannot serve (its Redis is down?)
            self._retry_now = self._fail_over()
        return False

    def _failed(self, reason: str) -> None:
        if reason != self.last_error:
            log.warning("%s; retrying with backoff", reason)
        self.last_error = reason


def _seconds(value: str | None) -> float | None:
    """A positive, finite number of seconds (at most a day), else ``None``."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not 0 < seconds <= 86400:
        return None
    return seconds


def _detail(response: httpx.Response) -> str:
    """The coordinator's ``detail`` message (else the body's start), on one line."""
    text = response.text
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        text = detail
    return " ".join(text.split())[:600]


@asynccontextmanager
async def coordinator_subsystem(agent: Agent) -> AsyncIterator[Enrolment | None]:
    """Enrol for the life of ``app`` when ``coordinator.enabled``; else do nothing."""
    config: AgentConfig = agent.config
    if not config.coordinator.enabled:
        agent.health_sections["coordinator"] = lambda: {"enabled": False}
        yield None
        return
    bus: EventBus = agent.bus
    enrolment = Enrolment(config, agent.manager, agent.dispatch_key)
    detach = bus.add_listener(enrolment.on_event)
    agent.enrolment = enrolment
    agent.health_sections["coordinator"] = enrolment.snapshot
    await enrolment.start()
    try:
        yield enrolment
    finally:
        detach()
        await enrolment.stop()
        agent.health_sections.pop("coordinator", None)
        agent.enrolment = None
