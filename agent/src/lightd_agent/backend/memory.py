"""An engine in a dict: the :class:`~lightd_agent.backend.base.Backend` for fast tests.

It keeps the rules the servers' code relies on (ownership labels, one id per container, host
ports taken once, events for every start and exit, calls refused while the engine is lost), and
gives tests the handles a real engine has only by accident:

- :meth:`MemoryBackend.crash` makes a running container exit (``oom`` first, if asked);
- :meth:`MemoryBackend.lose` / ``reachable`` take the engine away and bring it back;
- :meth:`MemoryBackend.fail_next` makes the next call of a method raise;
- :meth:`MemoryBackend.hold` / :meth:`MemoryBackend.release` stop a method until released
  (a held call still times out after ``call_seconds``, like a hung engine);
- ``install_outcomes`` says how a server's install script ends (its output goes to the
  install's ``output`` line by line); ``taken_ports`` are host ports something else holds;
  ``calls`` lists every call in order;
- ``stdin`` records what was written to each container's stdin, and a running container
  echoes each line into its output (``got: <line>``), like a shell loop reading stdin.

Over 400 lines on purpose: it is one idea, a whole engine behind the one ``Backend``
interface (every method the real one has, with the same rules), so a test reads one file.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from lightd_agent.backend.base import (
    LABEL_NODE,
    LABEL_ROLE,
    LABEL_SERVER,
    LABEL_SPEC,
    ContainerInfo,
    EngineError,
    EngineEvent,
    ImageMissing,
    InstallOutcome,
    PortInUse,
    Role,
    Usage,
)
from lightd_agent.backend.lines import LineShaper, Shaped
from lightd_agent.errors import AgentError, DockerTimeout, Unavailable
from lightd_shared.containers import ContainerSpec, PortMapping
from lightd_shared.timestamps import utcnow

__all__ = ["MemoryBackend"]


@dataclass
class _Container:
    info: ContainerInfo
    spec: ContainerSpec
    output: list[str] = field(default_factory=list)


class _Watch:
    def __init__(self, backend: MemoryBackend, deliver: Callable[[EngineEvent], None]) -> None:
        self._backend = backend
        self.deliver = deliver

    async def close(self) -> None:
        if self in self._backend._watches:
            self._backend._watches.remove(self)


class MemoryBackend:
    """Containers in memory for one node."""

    def __init__(
        self,
        node_id: str = "memory-node",
        *,
        call_seconds: float = 5.0,
        missing_images: set[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self._call_seconds = call_seconds
        self.available = False
        self.error: str | None = "not connected yet"
        self.lost = asyncio.Event()
        self.reachable = True
        self.containers: dict[str, _Container] = {}
        self.volumes: set[str] = set()
        self.missing_images = set(missing_images or ())
        self.taken_ports: set[int] = set()
        self.install_outcomes: dict[str, InstallOutcome] = {}
        self.calls: list[str] = []
        self.stdin: defaultdict[str, list[bytes]] = defaultdict(list)
        self._failures: defaultdict[str, deque[AgentError]] = defaultdict(deque)
        self._gates: dict[str, asyncio.Event] = {}
        self._watches: list[_Watch] = []
        self._ids = itertools.count(1)
        self._next_port = itertools.count(32768)

    # -- handles for tests ------------------------------------------------------------------

    def lose(self, reason: str = "engine stopped") -> None:
        """The engine goes away: every call answers 503 until ``reachable`` and a reconnect."""
        self.reachable = False
        self.available = False
        self.error = reason
        self.lost.set()
        self._watches.clear()

    def fail_next(self, method: str, error: AgentError) -> None:
        self._failures[method].append(error)

    def hold(self, method: str) -> None:
        self._gates[method] = asyncio.Event()

    def release(self, method: str) -> None:
        gate = self._gates.pop(method, None)
        if gate is not None:
            gate.set()

    def crash(self, server: str, exit_code: int = 1, *, oom: bool = False) -> str:
        """The running container of ``server`` exits by itself; returns its id."""
        container = next(
            c
            for c in self.containers.values()
            if c.info.server == server and c.info.role == "server" and c.info.running
        )
        if oom:
            self._emit(container, "oom")
        self._exit(container, exit_code, oom=oom)
        return container.info.id

    def server_container(self, server: str) -> ContainerInfo | None:
        for container in self.containers.values():
            if container.info.server == server and container.info.role == "server":
                return container.info
        return None

    def remove_outside(self, server: str) -> None:
        """Someone removes the server's container with ``docker rm -f``."""
        for key in [k for k, c in self.containers.items() if c.info.server == server]:
            del self.containers[key]

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def call_seconds(self) -> float:
        return self._call_seconds

    async def _enter(self, method: str, what: str) -> None:
        if not self.available:
            raise Unavailable(self.unavailable_message())
        self.calls.append(method)
        gate = self._gates.get(method)
        if gate is not None:
            try:
                await asyncio.wait_for(gate.wait(), timeout=self._call_seconds)
            except TimeoutError as exc:
                raise DockerTimeout(
                    f"Docker did not answer within {self._call_seconds:g}s while {what}"
                ) from exc
        if self._failures[method]:
            raise self._failures[method].popleft()

    def _emit(self, container: _Container, action: Literal["die", "oom", "start"]) -> None:
        info = container.info
        event = EngineEvent(
            action=action,
            container_id=info.id,
            server=info.server,
            role=info.role,
            exit_code=info.exit_code if action == "die" else None,
            time_ns=time.time_ns(),
        )
        loop = asyncio.get_running_loop()
        for watch in list(self._watches):
            loop.call_soon(watch.deliver, event)

    def _exit(self, container: _Container, exit_code: int, *, oom: bool = False) -> None:
        container.info = replace(
            container.info,
            running=False,
            exit_code=exit_code,
            oom_killed=oom,
            finished_at=utcnow(),
        )
        self._emit(container, "die")

    def _get(self, container_id: str) -> _Container:
        container = self.containers.get(container_id)
        if container is None:
            raise EngineError(f"No such container: {container_id}")
        return container

    def _labels(self, spec: ContainerSpec, role: Role) -> dict[str, str]:
        labels = dict(spec.labels)
        labels.update({LABEL_NODE: self.node_id, LABEL_SERVER: spec.id, LABEL_ROLE: role})
        if role == "server":
            labels[LABEL_SPEC] = spec.model_dump_json()
        return labels

    def add(
        self,
        spec: ContainerSpec,
        *,
        role: Role = "server",
        running: bool = False,
        stdin_open: bool = False,
    ) -> str:
        """A container made outside the agent's calls (left over, or from before a restart;
        such containers were made without stdin open unless ``stdin_open``)."""
        cid = f"mem{next(self._ids):061d}"
        self.containers[cid] = _Container(
            ContainerInfo(
                id=cid,
                labels=self._labels(spec, role),
                running=running,
                started_at=utcnow() if running else None,
                stdin_open=stdin_open,
            ),
            spec,
        )
        return cid

    # -- the interface ------------------------------------------------------------------------

    async def connect(self) -> bool:
        if not self.reachable:
            self.available = False
            return False
        self.available = True
        self.error = None
        self.lost.clear()
        return True

    def close(self) -> None:
        self.available = False

    def health(self) -> dict[str, object]:
        if self.available:
            return {"reachable": True, "socket": "memory", "version": "memory"}
        return {"reachable": False, "socket": "memory", "error": self.error}

    def unavailable_message(self) -> str:
        return f"the Docker engine is unreachable ({self.error or 'unknown reason'})"

    async def watch(self, deliver: Callable[[EngineEvent], None]) -> _Watch:
        await self._enter("watch", "opening the event stream")
        watch = _Watch(self, deliver)
        self._watches.append(watch)
        return watch

    async def list_owned(
        self, server: str | None = None, role: Role | None = None, *, what: str = "listing"
    ) -> list[ContainerInfo]:
        await self._enter("list_owned", what)
        return [
            c.info
            for c in self.containers.values()
            if (server is None or c.info.server == server) and (role is None or c.info.role == role)
        ]

    async def inspect(self, container_id: str, *, what: str = "inspecting") -> ContainerInfo | None:
        await self._enter("inspect", what)
        container = self.containers.get(container_id)
        return None if container is None else container.info

    async def find(
        self, server: str, role: Role = "server", *, what: str = "looking up"
    ) -> ContainerInfo | None:
        await self._enter("find", what)
        for container in self.containers.values():
            if container.info.server == server and container.info.role == role:
                return container.info
        return None

    async def has_image(self, image: str) -> bool:
        await self._enter("has_image", f"looking for image {image!r}")
        return image not in self.missing_images

    async def ensure_image(self, image: str, *, timeout: float) -> None:
        await self._enter("ensure_image", f"looking for image {image!r}")
        if image in self.missing_images:
            raise ImageMissing(f"image '{image}' not found locally and could not be pulled")

    async def ensure_volume(self, spec: ContainerSpec) -> None:
        await self._enter("ensure_volume", "creating the server's volume")
        self.volumes.add(spec.id)

    async def remove_volume(self, server: str) -> None:
        await self._enter("remove_volume", "removing the server's volume")
        self.volumes.discard(server)

    async def remove(self, container_id: str, *, what: str = "removing") -> None:
        await self._enter("remove", what)
        self.containers.pop(container_id, None)

    async def remove_role(self, server: str, role: Role, *, what: str = "removing") -> None:
        await self._enter("remove_role", what)
        for key in [
            k for k, c in self.containers.items() if c.info.server == server and c.info.role == role
        ]:
            del self.containers[key]

    async def create_server(self, spec: ContainerSpec) -> ContainerInfo:
        await self._enter("create_server", "creating the server's container")
        if any(
            c.info.server == spec.id and c.info.role == "server" for c in self.containers.values()
        ):
            raise EngineError(f"Conflict. The container name for {spec.id!r} is already in use")
        return self.containers[self.add(spec, stdin_open=True)].info

    async def run_install(
        self, spec: ContainerSpec, limit: float, output: Callable[[str], None] | None = None
    ) -> InstallOutcome:
        await self._enter("run_install", "running the install script")
        outcome = self.install_outcomes.get(spec.id, InstallOutcome(0, ""))
        if output is not None:
            for line in outcome.output.splitlines():
                output(line)
        return outcome

    def _host_ports(self, container: _Container) -> tuple[PortMapping, ...]:
        used = {
            p.host
            for c in self.containers.values()
            if c.info.running and c is not container
            for p in c.info.ports
            if p.host is not None
        }
        ports = []
        for mapping in container.spec.ports:
            host = mapping.host if mapping.host is not None else next(self._next_port)
            if host in self.taken_ports or host in used:
                raise PortInUse(
                    f"driver failed programming external connectivity: Bind for 0.0.0.0:{host} "
                    "failed: port is already allocated"
                )
            ports.append(mapping.model_copy(update={"host": host}))
        return tuple(sorted(ports, key=lambda p: (p.container, p.protocol)))

    async def start(self, container_id: str) -> ContainerInfo:
        await self._enter("start", "starting the server's container")
        container = self._get(container_id)
        if not container.info.running:
            container.info = replace(
                container.info,
                running=True,
                exit_code=None,
                oom_killed=False,
                started_at=utcnow(),
                finished_at=None,
                ports=self._host_ports(container),
            )
            self._emit(container, "start")
        return container.info

    async def stop(self, container_id: str, seconds: float) -> None:
        await self._enter("stop", "stopping the server's container")
        container = self._get(container_id)
        if container.info.running:
            self._exit(container, 0)

    async def kill(self, container_id: str) -> None:
        await self._enter("kill", "killing the server's container")
        container = self._get(container_id)
        if container.info.running:
            self._exit(container, 137)

    async def output(self, container_id: str, tail: int | Literal["all"] = "all") -> str:
        await self._enter("output", "reading logs")
        lines = self._get(container_id).output
        chosen = lines if tail == "all" else lines[-tail:] if tail else []
        return "".join(f"{line}\n" for line in chosen)

    async def follow(
        self, container_id: str, tail: int | Literal["all"], shaper: LineShaper | None = None
    ) -> AsyncIterator[Shaped]:
        text = await self.output(container_id, tail)
        shaper = shaper or LineShaper(None, 1 << 30)
        items = [*shaper.feed(text.encode()), *shaper.end()]

        async def lines() -> AsyncIterator[Shaped]:
            for item in items:
                yield item

        return lines()

    async def write_stdin(self, container_id: str, data: bytes) -> None:
        await self._enter("write_stdin", "writing to the server's console")
        container = self._get(container_id)
        if not container.info.running:
            raise EngineError(f"container {container_id} is not running")
        if not container.info.stdin_open:
            raise EngineError(f"container {container_id} was created without stdin open")
        self.stdin[container.info.server].append(data)
        for line in data.decode("utf-8", "replace").splitlines():
            container.output.append(f"got: {line}")

    async def stats(self, container_id: str) -> Usage:
        await self._enter("stats", "reading stats")
        self._get(container_id)
        return Usage(0.0, 0, 0, 0, 0)

    async def exec(
        self, container_id: str, argv: list[str], timeout: float
    ) -> tuple[int | None, str]:
        await self._enter("exec", "running a command in the container")
        container = self._get(container_id)
        if not container.info.running:
            raise EngineError(f"container {container_id} is not running")
        return 0, " ".join(argv) + "\n"
