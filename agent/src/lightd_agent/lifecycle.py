"""Servers' lifecycle: install, reinstall, power actions, crashes, recovery, Docker loss.

Every state change goes through :meth:`ServerManager._change`, which persists the server's
state file and publishes a :class:`~lightd_agent.events.LifecycleEvent` on the bus, in the
remote-sync seed's order::

    install     Started, CreatingContainer, Ready            (then Running if started)
    reinstall   ReinstallStarted, CreatingContainer, Ready
    errors      Error  error="failed" | "timeout", data = what happened, for an operator
    runtime     Running, Stopped, Crashed, Deleted

Power actions on one server hold its ``asyncio.Lock``, so two never interleave; every Docker
call is bounded by ``docker.call_timeout``. A container that exits while its server is
``running`` and nobody asked is a crash (seen on Docker's event stream); the server's
``restart_policy`` decides whether it is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
from docker.models.containers import Container
from pydantic import ValidationError

from lightd_agent.config import AgentConfig
from lightd_agent.docker_backend import (
    LABEL_ROLE,
    LABEL_SERVER,
    LABEL_SPEC,
    DockerBackend,
    EventReader,
    InstallOutcome,
    ports_of,
    stop_seconds,
)
from lightd_agent.errors import (
    AgentError,
    Conflict,
    DockerTimeout,
    NotFound,
    PolicyRefused,
    Unavailable,
)
from lightd_agent.events import EventBus, LifecycleEvent, LifecycleKind
from lightd_agent.policy import check_spec
from lightd_agent.resources import block_io
from lightd_agent.state import StateStore, StoredServer, parse_docker_time
from lightd_shared.containers import (
    CONTAINER_STATES,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    ContainerView,
    ExecResult,
    PortMapping,
)
from lightd_shared.timestamps import utcnow

__all__ = ["Server", "ServerManager"]

log = logging.getLogger(__name__)

_EXEC_OUTPUT_LIMIT = 64 * 1024


@dataclass(eq=False)
class Server:
    """One managed server as the agent keeps it in memory."""

    spec: ContainerSpec
    state: ContainerState
    error: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    container_id: str | None = None
    published: list[PortMapping] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    restarts: deque[float] = field(default_factory=deque)
    oom: bool = False
    fresh: bool = False
    """Set by ``create`` when Docker had no container of this id: nothing old to remove."""
    held: str | None = None
    """Why the policy refused this server's stored spec at start; the agent never starts it."""

    @property
    def id(self) -> str:
        return self.spec.id

    def record(self) -> StoredServer:
        return StoredServer(
            spec=self.spec,
            state=self.state,
            error=self.error,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            container_id=self.container_id,
        )

    def view(self) -> ContainerView:
        return ContainerView(
            id=self.id,
            state=self.state,
            error=self.error,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            restarts=len(self.restarts),
            container_id=self.container_id,
            spec=self.spec,
            ports=list(self.published) or list(self.spec.ports),
        )

    def installing(self) -> bool:
        return self.task is not None and not self.task.done()


def _explain(exc: docker.errors.APIError) -> str:
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or exc)


def _port_free(port: int, protocol: str) -> bool:
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class ServerManager:
    """All servers of this agent, their Docker containers, and the loops that watch them."""

    def __init__(self, config: AgentConfig, backend: DockerBackend, bus: EventBus) -> None:
        self.config = config
        self.backend = backend
        self.bus = bus
        self.store = StateStore(config.storage.state_dir)
        self.servers: dict[str, Server] = {}
        self.started_at = utcnow()
        self._reader: EventReader | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Ids and host ports of creates that passed their checks and await Docker: taken
        # before the first await, so a concurrent create of the same id or port gets 409.
        self._creating: set[str] = set()
        self._claimed_ports: dict[tuple[int, str], str] = {}

    # -- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the state dir, connect to Docker, recover, and watch Docker's events."""
        self._loop = asyncio.get_running_loop()
        self.started_at = utcnow()
        self.store.prepare()
        for record in self.store.load_all():
            server = Server(
                spec=record.spec,
                state=record.state,
                error=record.error,
                exit_code=record.exit_code,
                started_at=record.started_at,
                finished_at=record.finished_at,
                container_id=record.container_id,
            )
            self.servers[record.spec.id] = server
            try:
                check_spec(record.spec, self.config.policy, self.config.storage)
            except PolicyRefused as exc:
                self._hold(server, exc)
        self._consumer = asyncio.create_task(self._consume_events(), name="docker-events")
        if await self.backend.connect():
            await self._on_connected()
        else:
            log.warning(
                "Docker engine unreachable at start (%s); the API is up, container calls "
                "answer 503 until it answers",
                self.backend.error,
            )
        self._watchdog = asyncio.create_task(self._watch(), name="docker-watchdog")

    async def stop(self) -> None:
        """Stop watching; cut installs off (recovery marks them failed at the next start)."""
        for task in (self._watchdog, self._consumer):
            if task is not None:
                task.cancel()
        cut_off = [s for s in self.servers.values() if s.installing()]
        pending = [s.task for s in cut_off]
        pending += list(self._tasks)
        for task in pending:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._watchdog, self._consumer, *pending] if t is not None),
            return_exceptions=True,
        )
        for server in cut_off:  # their state files still say installing: failed at next start
            with contextlib.suppress(Exception):
                await self.backend.call(
                    "removing an install container cut off by shutdown",
                    self.backend.remove_role,
                    server.id,
                    "install",
                    timeout=5,
                )
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.to_thread(reader.close)
        self.backend.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- Docker connection ------------------------------------------------------------------

    async def _watch(self) -> None:
        interval = self.config.docker.reconnect_interval.total_seconds()
        while True:
            if self.backend.available:
                await self.backend.lost.wait()
                continue
            if self._reader is not None:
                reader, self._reader = self._reader, None
                await asyncio.to_thread(reader.close)
            await asyncio.sleep(interval)
            if await self.backend.connect():
                log.info("Docker engine reachable again; reconciling servers with Docker")
                await self._on_connected()

    async def _on_connected(self) -> None:
        try:
            await self._start_reader()
            await self.reconcile()
        except AgentError as exc:
            log.warning("reconnecting to Docker failed half-way (%s); retrying", exc.message)
        except Exception:  # the watchdog must outlive any surprise from Docker
            log.exception("reconciling servers with Docker failed; retrying on reconnect")

    async def _start_reader(self) -> None:
        loop = asyncio.get_running_loop()

        def deliver(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        reader = EventReader(self.backend, deliver, self.backend.mark_lost_threadsafe)
        await self.backend.call("opening Docker's event stream", reader.start)
        self._reader = reader

    async def _consume_events(self) -> None:
        while True:
            event = await self._events.get()
            try:
                self._dispatch(event)
            except Exception:  # one odd event must never end the loop
                log.exception("could not handle Docker event %r", event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        if attrs.get(LABEL_ROLE) != "server":
            return
        server = self.servers.get(str(attrs.get(LABEL_SERVER)))
        if server is None:
            return
        action = event.get("Action") or event.get("status")
        container_id = str(actor.get("ID") or event.get("id") or "")
        if action == "oom":
            server.oom = True
        elif action == "die":
            code = attrs.get("exitCode")
            exit_code = int(code) if code is not None and str(code).lstrip("-").isdigit() else None
            died = event.get("timeNano")
            died_ns = died if isinstance(died, int) and died > 0 else None
            self._spawn(self._on_die(server, container_id, exit_code, died_ns), f"die:{server.id}")

    async def _on_die(
        self, server: Server, container_id: str, exit_code: int | None, died_ns: int | None
    ) -> None:
        """A container exited: a crash if its server is ``running`` and nobody asked.

        Docker's ``die`` event carries the exit code and the time it happened (``oom`` comes as
        its own event before it), so the crash is published from the event alone. Inspecting
        the container first would wait on the engine's clean-up of the dead container (50-120
        ms on this engine) before anyone hears of the crash. Only an event without those
        fields falls back to an inspect.
        """
        async with server.lock:
            if self.servers.get(server.id) is not server or server.state != "running":
                return  # stopped, killed, restarted or deleted by the agent: not a crash
            if server.container_id and container_id and server.container_id != container_id:
                return
            try:
                if exit_code is not None and died_ns is not None:
                    died_at = _from_nanoseconds(died_ns)
                    if server.started_at is not None and died_at < server.started_at:
                        return  # a stale event from before the last start
                    server.finished_at = died_at
                else:
                    container = await self.backend.call(
                        "inspecting a container that exited", self.backend.inspect, container_id
                    )
                    if container is not None:
                        state: dict[str, Any] = container.attrs.get("State") or {}
                        if state.get("Running"):
                            return  # a stale event from before the last start
                        server.oom = server.oom or bool(state.get("OOMKilled"))
                        server.finished_at = parse_docker_time(state.get("FinishedAt"))
                        if exit_code is None and state.get("ExitCode") is not None:
                            exit_code = int(state["ExitCode"])
                await self._crashed(server, exit_code)
            except AgentError as exc:
                log.warning("handling the exit of server %s failed: %s", server.id, exc.message)
            except Exception:
                log.exception("handling the exit of server %s failed", server.id)

    async def _crashed(self, server: Server, exit_code: int | None) -> None:
        """Mark a crash, then apply the server's restart policy (the lock is held)."""
        why = f"exited unexpectedly with code {exit_code}"
        if server.oom:
            why += " (killed: out of memory, raise limits.memory)"
        server.oom = False
        server.exit_code = exit_code
        self._change(server, "crashed", "Crashed", error=why, data=why, exit_code=exit_code)
        policy = server.spec.restart_policy
        now = time.monotonic()
        window = policy.window.total_seconds()
        while server.restarts and now - server.restarts[0] > window:
            server.restarts.popleft()
        if not policy.enabled or len(server.restarts) >= policy.max_restarts:
            log.warning(
                "server %s crashed (%s) and stays crashed: %d restarts in %s already",
                server.id,
                why,
                len(server.restarts),
                policy.window,
            )
            server.error = (
                f"{why}; not restarted: the restart policy allows {policy.max_restarts} "
                f"restarts in {int(window)}s"
                if policy.enabled
                else f"{why}; not restarted: the restart policy is disabled"
            )
            self._persist(server)
            return
        server.restarts.append(now)
        log.info(
            "server %s crashed (%s); restarting (%d of %d in the window)",
            server.id,
            why,
            len(server.restarts),
            policy.max_restarts,
        )
        try:
            await self._start_locked(server)
        except AgentError as exc:
            self._error(server, exc, "restarting after a crash")

    async def reconcile(self) -> None:
        """Match the servers we know with the containers Docker has; fix what drifted.

        Runs at start and after the engine comes back: a server whose container died while
        nobody watched is a crash; an install that is not running in this process was cut off
        and is marked ``failed``; a leftover install container is removed; a container with
        our labels but no state file is adopted from its ``lightd.spec`` label.
        """
        owned: list[Container] = await self.backend.call(
            "listing this agent's containers", self.backend.list_owned
        )
        mains: dict[str, Container] = {}
        for container in owned:
            labels = container.labels or {}
            server_id = labels.get(LABEL_SERVER, "")
            known = self.servers.get(server_id)
            if labels.get(LABEL_ROLE) == "install":
                if known is None or not known.installing():
                    await self.backend.call(
                        "removing a leftover install container", self.backend.remove, container
                    )
            elif labels.get(LABEL_ROLE) == "server":
                if server_id in mains:  # never expected; keep the first, report the rest
                    log.error("two containers for server %s; keeping %s", server_id, mains)
                    continue
                mains[server_id] = container
        for server_id, container in mains.items():
            if server_id not in self.servers:
                self._adopt(server_id, container)
        for server in list(self.servers.values()):
            if server.installing() or server.held is not None:
                continue  # a held server's container is left exactly as it is
            async with server.lock:
                await self._reconcile_one(server, mains.get(server.id))

    def _hold(self, server: Server, refusal: PolicyRefused) -> None:
        """A stored spec the policy refuses (a tampered state file, or a stricter policy).

        The server stays known (so it can be seen and deleted) but ``failed``: never started,
        restarted or reconciled, and a reinstall is refused by the same check.
        """
        why = (
            f"not started: its stored spec is refused by this agent's policy: {refusal.message}"
            f"; if the state file {self.store.directory / (server.id + '.json')} was not "
            "edited on purpose it may have been tampered with: delete the server, or fix the "
            "file or the policy and restart the agent"
        )
        server.held = why
        if server.state == "failed" and server.error == why:
            # held the same way at the last start: already said on the event stream
            log.error("server %s failed: %s", server.id, why)
            return
        self._fail(server, "failed", why)

    def _adopt(self, server_id: str, container: Container) -> None:
        try:
            spec = ContainerSpec.model_validate_json((container.labels or {})[LABEL_SPEC])
        except (KeyError, ValidationError):
            log.error(
                "container %s is labelled as server %s of this node but has no readable spec; "
                "left alone: remove it with `docker rm -f %s` if it is not needed",
                container.short_id,
                server_id,
                container.short_id,
            )
            return
        try:
            check_spec(spec, self.config.policy, self.config.storage)
        except PolicyRefused as exc:
            log.error(
                "container %s is labelled as server %s of this node but its spec is refused "
                "by this agent's policy (%s); not adopted, left alone: remove it with "
                "`docker rm -f %s` if it is not needed",
                container.short_id,
                server_id,
                exc.message,
                container.short_id,
            )
            return
        log.warning("server %s had no state file; rebuilt from its container's labels", server_id)
        server = Server(spec=spec, state="stopped", container_id=container.id)
        self.servers[server_id] = server
        self._persist(server)

    async def _reconcile_one(self, server: Server, container: Container | None) -> None:
        if server.state == "installing":
            what = "reinstall" if container is not None else "install"
            self._fail(
                server,
                "failed",
                f"the {what} was cut off (the agent stopped before it finished); "
                "reinstall the server to try again",
            )
            return
        if container is None:
            if server.state != "failed":
                server.container_id = None
                self._fail(
                    server,
                    "failed",
                    "the server's container was removed outside the agent; reinstall it",
                )
            return
        server.container_id = container.id
        state: dict[str, Any] = container.attrs.get("State") or {}
        if state.get("Running"):
            server.started_at = parse_docker_time(state.get("StartedAt"))
            if server.state != "running":
                server.error = None
                server.exit_code = None
                self._change(server, "running", "Running")
            await self._refresh_ports(server, container)
            return
        exit_code = state.get("ExitCode")
        server.finished_at = parse_docker_time(state.get("FinishedAt"))
        if server.state == "running":
            server.oom = bool(state.get("OOMKilled"))
            await self._crashed(server, int(exit_code) if exit_code is not None else None)
        elif server.state == "stopping":
            server.exit_code = exit_code
            self._change(server, "stopped", "Stopped", exit_code=exit_code)

    # -- state changes ----------------------------------------------------------------------

    def _persist(self, server: Server) -> None:
        if self.servers.get(server.id) is server:
            self.store.save(server.record())

    def _change(
        self,
        server: Server,
        state: ContainerState,
        kind: LifecycleKind | None,
        *,
        error: str | None = None,
        data: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Set the state, persist it, then publish the event (if any) on the bus."""
        server.state = state
        if error is not None or state in ("installing", "ready", "running"):
            server.error = error
        self._persist(server)
        if kind is not None:
            self.bus.publish(
                LifecycleEvent(
                    server=server.id,
                    kind=kind,
                    state=state,
                    error=error if kind == "Error" else None,
                    data=data,
                    exit_code=exit_code,
                )
            )

    def _fail(self, server: Server, error: str, data: str) -> None:
        """An install/reinstall that could not complete: ``failed``, with what happened."""
        log.error("server %s failed: %s", server.id, data)
        server.state = "failed"
        server.error = data
        self._persist(server)
        self.bus.publish(
            LifecycleEvent(server=server.id, kind="Error", state="failed", error=error, data=data)
        )

    def _error(self, server: Server, exc: AgentError, doing: str) -> None:
        """A failed power action: the state stays; the error is recorded and published."""
        error = "timeout" if isinstance(exc, DockerTimeout) else "failed"
        data = f"{doing} failed: {exc.message}"
        log.error("server %s: %s", server.id, data)
        server.error = data
        self._persist(server)
        self.bus.publish(
            LifecycleEvent(
                server=server.id, kind="Error", state=server.state, error=error, data=data
            )
        )

    # -- lookups ----------------------------------------------------------------------------

    def get(self, server_id: str) -> Server:
        server = self.servers.get(server_id)
        if server is None:
            raise NotFound(f"no server with id {server_id!r} on this agent")
        return server

    def _require_docker(self) -> None:
        if not self.backend.available:
            raise Unavailable(self.backend.unavailable_message())

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CONTAINER_STATES, 0)
        for server in self.servers.values():
            counts[server.state] += 1
        counts["total"] = len(self.servers)
        return counts

    def views(self) -> list[ContainerView]:
        self._require_docker()
        return [s.view() for s in sorted(self.servers.values(), key=lambda s: s.id)]

    def view(self, server_id: str) -> ContainerView:
        self._require_docker()
        return self.get(server_id).view()

    async def _container(self, server: Server) -> Container:
        """The server's container: by its known id (one inspect), else by its labels."""
        container: Container | None = None
        if server.container_id:
            container = await self.backend.call(
                "looking up the server's container", self.backend.inspect, server.container_id
            )
            labels = (container.labels or {}) if container is not None else {}
            if labels.get(LABEL_SERVER) != server.id or labels.get(LABEL_ROLE) != "server":
                container = None
        if container is None:
            container = await self.backend.call(
                "looking up the server's container", self.backend.find, server.id
            )
        if container is None:
            raise Conflict(
                f"server {server.id!r} has no container (state {server.state}); reinstall it"
            )
        server.container_id = container.id
        return container

    # -- install ----------------------------------------------------------------------------

    def _check_ports(self, spec: ContainerSpec) -> None:
        for mapping in spec.ports:
            if mapping.host is None:
                continue
            claimant = self._claimed_ports.get((mapping.host, mapping.protocol))
            if claimant is not None:
                raise Conflict(
                    f"ports: host port {mapping.host}/{mapping.protocol} is already claimed by "
                    f"server {claimant!r}, being created right now; choose another or omit 'host'"
                )
            for other in self.servers.values():
                for used in other.spec.ports:
                    if (used.host, used.protocol) == (mapping.host, mapping.protocol):
                        raise Conflict(
                            f"ports: host port {mapping.host}/{mapping.protocol} is already "
                            f"used by server {other.id!r}; choose another or omit 'host'"
                        )
            if not _port_free(mapping.host, mapping.protocol):
                raise Conflict(
                    f"ports: host port {mapping.host}/{mapping.protocol} is already in use on "
                    "this host; choose another or omit 'host' to let Docker pick one"
                )

    async def create(self, spec: ContainerSpec) -> Server:
        """Validate against policy, ports and ids, then install in the background (202)."""
        check_spec(spec, self.config.policy, self.config.storage)
        self._require_docker()
        if spec.id in self.servers:
            raise Conflict(f"a server with id {spec.id!r} already exists on this agent")
        if spec.id in self._creating:
            raise Conflict(f"a server with id {spec.id!r} is being created on this agent right now")
        self._check_ports(spec)
        # Claim the id and the host ports before the first await; every check above and
        # these claims run without yielding, so two concurrent creates cannot both pass.
        ports = [(p.host, p.protocol) for p in spec.ports if p.host is not None]
        self._creating.add(spec.id)
        for port in ports:
            self._claimed_ports[port] = spec.id
        try:
            found: list[Container] = await self.backend.call(
                "checking for an existing container", self.backend.list_owned, spec.id
            )
            for existing in found:
                if (existing.labels or {}).get(LABEL_ROLE) == "server":
                    raise Conflict(
                        f"a container for server {spec.id!r} already exists (container "
                        f"{existing.short_id}); delete it first"
                    )
            server = Server(spec=spec, state="installing", fresh=not found)
            self.servers[spec.id] = server  # from here on the id and ports are the server's
            self._persist(server)
            server.task = asyncio.create_task(self._install(server, reinstall=False))
            return server
        finally:
            self._creating.discard(spec.id)
            for port in ports:
                if self._claimed_ports.get(port) == spec.id:
                    del self._claimed_ports[port]

    async def reinstall(self, server_id: str, stop_timeout: float = 10.0) -> Server:
        """Re-run the install keeping the volume; 202 at once, the work in the background.

        A running server is stopped first (gracefully, killed after ``stop_timeout``).
        """
        server = self.get(server_id)
        check_spec(server.spec, self.config.policy, self.config.storage)
        self._require_docker()
        if server.installing():
            raise Conflict(f"server {server_id!r} is already installing")
        server.task = asyncio.create_task(
            self._install(server, reinstall=True, stop_timeout=stop_timeout)
        )
        return server

    async def _install(
        self, server: Server, *, reinstall: bool, stop_timeout: float = 10.0
    ) -> None:
        try:
            async with server.lock:
                created = await self._install_locked(
                    server, reinstall=reinstall, stop_timeout=stop_timeout
                )
                if created is not None and server.spec.start_on_completion:
                    try:
                        await self._start_locked(server, created)
                    except AgentError as exc:
                        self._error(server, exc, "starting after the install")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a server stuck in installing
            log.exception("install of %s failed unexpectedly", server.id)
            self._fail(server, "failed", f"unexpected error during install: {exc}")

    async def _install_locked(
        self, server: Server, *, reinstall: bool, stop_timeout: float = 10.0
    ) -> Container | None:
        spec = server.spec
        call = self.backend.call
        b = self.backend
        server.exit_code = None
        fresh = server.fresh and not reinstall  # Docker had nothing of this id: skip clean-ups
        server.fresh = False
        if reinstall:
            if server.state == "running":
                container = await self._container(server)
                self._change(server, "stopping", None)
                await call(
                    "stopping the server for its reinstall",
                    b.stop,
                    container,
                    stop_timeout,
                    timeout=self.backend.call_seconds + stop_seconds(stop_timeout),
                )
            self._change(server, "installing", "ReinstallStarted")
        else:
            self._change(server, "installing", "Started")
        try:
            await call(
                f"looking for image {spec.image!r}",
                b.ensure_image,
                spec.image,
                timeout=self.config.docker.install_timeout.total_seconds(),
            )
            await call("creating the server's volume", b.ensure_volume, spec)
            if not fresh:
                await call("removing an old install container", b.remove_role, spec.id, "install")
            if spec.install_script is not None:
                outcome = await self._run_install_script(server)
                if outcome.exit_code is None:
                    self._fail(
                        server,
                        "timeout",
                        f"install script did not finish within "
                        f"{self.config.docker.install_timeout} (docker.install_timeout); "
                        f"last lines of output:\n{outcome.tail()}",
                    )
                    return None
                if outcome.exit_code != 0:
                    self._fail(
                        server,
                        "failed",
                        f"install script exited with code {outcome.exit_code}; "
                        f"last lines of output:\n{outcome.tail()}",
                    )
                    return None
            self._change(server, "installing", "CreatingContainer")
            if not fresh:
                await call("removing the old container", b.remove_role, spec.id, "server")
            server.container_id = None
            container = await call("creating the server's container", b.create_server, spec)
        except docker.errors.ImageNotFound as exc:
            self._fail(server, "failed", _explain(exc))
            return None
        except docker.errors.APIError as exc:
            self._fail(server, "failed", f"Docker container creation failed: {_explain(exc)}")
            return None
        except DockerTimeout as exc:
            self._fail(server, "timeout", exc.message)
            return None
        except AgentError as exc:
            self._fail(server, "failed", exc.message)
            return None
        server.container_id = container.id
        server.started_at = None
        server.finished_at = None
        server.published = []
        self._change(server, "ready", "Ready")
        return container

    async def _run_install_script(self, server: Server) -> InstallOutcome:
        b = self.backend
        limit = self.config.docker.install_timeout.total_seconds()
        container = await b.call("creating the install container", b.create_install, server.spec)
        try:
            await b.call("starting the install container", b.start, container)
            try:
                code: int | None = await b.call(
                    "running the install script",
                    b.wait,
                    container,
                    limit + b.call_seconds,
                    timeout=limit,
                )
            except DockerTimeout:
                code = None
                await b.call("killing the install container", b.kill, container)
            output = await b.call("reading the install output", b.output, container, 200)
            return InstallOutcome(code, output)
        finally:
            with contextlib.suppress(AgentError, docker.errors.APIError):
                await b.call("removing the install container", b.remove, container)

    # -- power ------------------------------------------------------------------------------

    async def power(self, server_id: str, action: str, timeout: float = 10.0) -> Server:
        """``start``, ``stop``, ``restart`` or ``kill``; answers when the action is done."""
        server = self.get(server_id)
        if server.held is not None and action in ("start", "restart"):
            raise PolicyRefused(f"server {server_id!r} is {server.held}")
        self._require_docker()
        if server.installing():
            raise Conflict(f"server {server_id!r} is installing; wait until it is ready")
        async with server.lock:
            if self.servers.get(server_id) is not server:
                raise NotFound(f"no server with id {server_id!r} on this agent")
            if server.state == "installing":
                raise Conflict(f"server {server_id!r} is installing; wait until it is ready")
            before = server.state
            try:
                if action == "start":
                    await self._start_locked(server)
                elif action == "stop":
                    await self._stop_locked(server, timeout, kill=False)
                elif action == "kill":
                    await self._stop_locked(server, timeout, kill=True)
                elif action == "restart":
                    await self._stop_locked(server, timeout, kill=False)
                    await self._start_locked(server)
                else:  # pragma: no cover - routes only pass the four actions
                    raise NotFound(f"unknown action {action!r}")
            except Conflict:
                raise
            except AgentError as exc:
                await self._resync(server, before)
                self._error(server, exc, action)
                raise
            except docker.errors.APIError as exc:
                failure = Conflict(f"{action} of server {server_id!r} failed: {_explain(exc)}")
                await self._resync(server, before)
                self._error(server, failure, action)
                raise failure from exc
        return server

    async def _start_locked(self, server: Server, container: Container | None = None) -> None:
        """Start the container (``container`` if the caller just created it), then one inspect.

        State and published ports come from the same inspect after ``start``.
        """
        if server.state == "failed":
            raise Conflict(
                f"server {server.id!r} failed ({server.error}); reinstall it before starting"
            )
        if server.state == "running":
            return
        # again at every start: a bind source may have changed since the create (a server
        # that can write under storage.base_path could have made part of it a symlink)
        check_spec(server.spec, self.config.policy, self.config.storage)
        if container is None:
            container = await self._container(server)
        b = self.backend
        try:
            await b.call("starting the server's container", b.start, container)
        except docker.errors.APIError as exc:
            text = _explain(exc)
            if "port is already allocated" in text or "address already in use" in text:
                conflict = Conflict(f"cannot start server {server.id!r}: {text}")
                self._error(server, conflict, "start")
                raise conflict from exc
            raise Conflict(f"cannot start server {server.id!r}: {text}") from exc
        await b.call("reading the server's state", b.reload, container)
        state: dict[str, Any] = container.attrs.get("State") or {}
        server.started_at = parse_docker_time(state.get("StartedAt")) or utcnow()
        server.exit_code = None
        server.finished_at = None
        self._apply_ports(server, ports_of(container))
        self._change(server, "running", "Running")

    async def _refresh_ports(self, server: Server, container: Container) -> None:
        ports = await self.backend.call(
            "reading published ports", self.backend.published_ports, container
        )
        self._apply_ports(server, ports)

    def _apply_ports(self, server: Server, ports: dict[str, Any]) -> None:
        published = []
        for key, bindings in ports.items():
            number, _, protocol = key.partition("/")
            host = None
            for binding in bindings or []:
                if binding.get("HostPort"):
                    host = int(binding["HostPort"])
                    break
            published.append(
                PortMapping(
                    container=int(number), host=host, protocol="udp" if protocol == "udp" else "tcp"
                )
            )
        server.published = sorted(published, key=lambda p: (p.container, p.protocol))

    async def _stop_locked(self, server: Server, timeout: float, *, kill: bool) -> None:
        if server.state in ("ready", "stopped", "failed"):
            return
        b = self.backend
        container = await self._container(server)
        if server.state != "crashed":
            self._change(server, "stopping", None)
            if kill:
                await b.call("killing the server's container", b.kill, container)
                await b.call(
                    "waiting for the killed container to exit", b.wait, container, b.call_seconds
                )
            else:
                await b.call(
                    "stopping the server's container",
                    b.stop,
                    container,
                    timeout,
                    timeout=b.call_seconds + stop_seconds(timeout),
                )
        state = await b.call("reading the server's state", b.state, container)
        exit_code = state.get("ExitCode")
        server.exit_code = int(exit_code) if exit_code is not None else None
        server.finished_at = parse_docker_time(state.get("FinishedAt"))
        server.error = None
        self._change(server, "stopped", "Stopped", exit_code=server.exit_code)

    async def _resync(self, server: Server, before: ContainerState) -> None:
        """After a failed action, take the state Docker reports, or the state before it."""
        if server.state != "stopping":
            return
        try:
            container = await self._container(server)
            state = await self.backend.call("reading state", self.backend.state, container)
        except AgentError:
            server.state = before  # Docker cannot tell; never leave it "stopping"
        else:
            server.state = "running" if state.get("Running") else "stopped"
        self._persist(server)

    # -- delete -----------------------------------------------------------------------------

    async def delete(self, server_id: str, *, volumes: bool = False) -> None:
        server = self.get(server_id)
        self._require_docker()
        task = server.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        b = self.backend
        async with server.lock:
            if self.servers.get(server_id) is not server:
                raise NotFound(f"no server with id {server_id!r} on this agent")
            await b.call("removing the install container", b.remove_role, server_id, "install")
            await b.call("removing the server's container", b.remove_role, server_id, "server")
            if volumes:
                await b.call("removing the server's volume", b.remove_volume, server_id)
            del self.servers[server_id]
            self.store.remove(server_id)
            self.bus.publish(LifecycleEvent(server=server_id, kind="Deleted", state="deleted"))

    # -- logs, stats, exec ------------------------------------------------------------------

    async def logs(self, server_id: str, tail: int | None) -> str:
        server = self.get(server_id)
        self._require_docker()
        container = await self._container(server)
        return await self.backend.call(
            "reading logs", self.backend.output, container, "all" if tail is None else tail
        )

    async def follow_logs(self, server_id: str, tail: int | None) -> AsyncIterator[str]:
        """Lines of the server's output as they come (for ``?follow=true``)."""
        server = self.get(server_id)
        self._require_docker()
        container = await self._container(server)
        stream: Any = await self.backend.call(
            "opening the log stream",
            container.logs,
            stdout=True,
            stderr=True,
            stream=True,
            follow=True,
            tail="all" if tail is None else tail,
        )
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
        loop = asyncio.get_running_loop()

        def put(item: str | None) -> None:
            # bounded wait: a consumer that is gone (or a loop that stopped) ends the pump
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result(timeout=30)

        def pump() -> None:
            buffer = b""
            try:
                for chunk in stream:
                    buffer += bytes(chunk)
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        put(line.decode("utf-8", "replace"))
            except Exception:  # closed by the consumer, or the engine went away
                pass
            finally:
                with contextlib.suppress(Exception):
                    if buffer:
                        put(buffer.decode("utf-8", "replace"))
                    put(None)

        thread = asyncio.get_running_loop().run_in_executor(None, pump)

        async def lines() -> AsyncIterator[str]:
            try:
                while True:
                    line = await queue.get()
                    if line is None:
                        return
                    yield line
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
                while not queue.empty():  # let the pump finish its puts
                    queue.get_nowait()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(thread), timeout=1)

        return lines()

    async def stats(self, server_id: str) -> ContainerStats:
        server = self.get(server_id)
        self._require_docker()
        if server.state != "running":
            raise Conflict(f"server {server_id!r} is {server.state}; stats need it running")
        container = await self._container(server)
        raw = await self.backend.call("reading stats", self.backend.stats, container)
        cpu = raw.get("cpu_stats") or {}
        pre = raw.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
            pre.get("cpu_usage") or {}
        ).get("total_usage", 0)
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        cpus = cpu.get("online_cpus") or 1
        percent = (cpu_delta / system_delta) * cpus * 100.0 if system_delta > 0 else 0.0
        memory = raw.get("memory_stats") or {}
        networks = raw.get("networks") or {}
        return ContainerStats(
            id=server_id,
            cpu_percent=round(max(percent, 0.0), 3),
            memory_usage=int(memory.get("usage", 0)),
            memory_limit=int(memory.get("limit", 0)),
            network_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks.values()),
            network_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks.values()),
            block_read_bytes=block_io(raw)[0],
            block_write_bytes=block_io(raw)[1],
            timestamp=utcnow(),
        )

    async def exec(self, server_id: str, command: str | list[str], timeout: float) -> ExecResult:
        server = self.get(server_id)
        self._require_docker()
        if server.state != "running":
            raise Conflict(f"server {server_id!r} is {server.state}; exec needs it running")
        container = await self._container(server)
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        began = time.monotonic()
        try:
            code, output = await self.backend.call(
                "running a command in the container",
                self.backend.exec,
                container,
                argv,
                timeout=timeout,
            )
        except DockerTimeout:
            return ExecResult(
                id=server_id,
                status="timeout",
                output=f"the command did not finish within {timeout:g}s",
                duration=_elapsed(began),
            )
        except docker.errors.APIError as exc:
            raise Conflict(f"exec in server {server_id!r} failed: {_explain(exc)}") from exc
        return ExecResult(
            id=server_id,
            status="success" if code == 0 else "failed",
            exit_code=code,
            output=output[-_EXEC_OUTPUT_LIMIT:],
            duration=_elapsed(began),
        )


def _elapsed(began: float) -> timedelta:
    return timedelta(seconds=round(time.monotonic() - began, 3))


def _from_nanoseconds(value: int) -> datetime:
    """Docker's event ``timeNano`` -> aware ``datetime`` (microseconds, like its timestamps)."""
    seconds, nanos = divmod(value, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
