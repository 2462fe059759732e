"""What the agent needs from a container engine, in the agent's own words.

:class:`Backend` is the seam between the servers' code (:mod:`lightd_agent.servers`) and
Docker: it speaks only the dataclasses below and raises only the agent's errors. Two
implementations sit side by side:

- :mod:`lightd_agent.backend.docker_sdk`: the Docker SDK, the only module that imports
  ``docker``;
- :mod:`lightd_agent.backend.memory`: containers in a dict, for fast tests of the rules
  (state machine, crash policy, power serialisation, recovery) without an engine.

Errors a backend raises::

    AgentError
    ├── Unavailable          (503)  the engine is unreachable (the backend is marked lost)
    ├── DockerTimeout        (504)  a call did not answer within docker.call_timeout
    └── EngineError          (409)  the engine refused the call; ``explanation`` says why
        ├── ImageMissing            the image is absent and cannot be pulled
        └── PortInUse               a host port is taken (``start``)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from lightd_agent.backend.lines import LineShaper, Shaped
from lightd_agent.errors import Conflict
from lightd_shared.containers import ContainerSpec, PortMapping

__all__ = [
    "LABEL_NODE",
    "LABEL_ROLE",
    "LABEL_SCOPE",
    "LABEL_SERVER",
    "LABEL_SPEC",
    "VOLUME_PREFIX",
    "Backend",
    "ContainerInfo",
    "EngineError",
    "EngineEvent",
    "EventWatch",
    "ImageMissing",
    "InstallOutcome",
    "PortInUse",
    "Role",
    "Usage",
    "from_nanoseconds",
]

LABEL_NODE = "lightd.node"
LABEL_SCOPE = "lightd.scope"
LABEL_SERVER = "lightd.server"
LABEL_ROLE = "lightd.role"
LABEL_SPEC = "lightd.spec"
"""The spec as JSON, so a server can be rebuilt from Docker alone if the state dir is lost."""

VOLUME_PREFIX = "lightd-"
"""Every server's own volume is named ``lightd-<node>-<server>-data``; requests may not use it."""

Role = Literal["server", "install"]
_OUTPUT_LINES = 20


class EngineError(Conflict):
    """The engine refused a call (Docker's ``APIError``); ``explanation`` is its own words."""

    def __init__(self, explanation: str) -> None:
        super().__init__(explanation)
        self.explanation = explanation


class ImageMissing(EngineError):
    """The image is not on this host and could not be pulled."""


class PortInUse(EngineError):
    """Starting a container failed because one of its host ports is taken."""


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as the engine last reported it (an inspect)."""

    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    running: bool = False
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ports: tuple[PortMapping, ...] = ()
    """Ports as published (host ``None``: not published), sorted by container port."""
    stdin_open: bool = False
    """Created with stdin kept open (the console writes to it); servers made before the
    console existed were not."""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def server(self) -> str:
        return self.labels.get(LABEL_SERVER, "")

    @property
    def role(self) -> str:
        return self.labels.get(LABEL_ROLE, "")


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """A container event of this node: ``die`` (with exit code and time), ``oom``, ``start``."""

    action: Literal["die", "oom", "start"]
    container_id: str
    server: str
    role: str
    exit_code: int | None = None
    time_ns: int | None = None
    """When it happened, by the engine's clock (``timeNano``); ``None`` if it did not say."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Resource use of a running container at one moment."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int
    network_rx_bytes: int
    network_tx_bytes: int
    block_read_bytes: int = 0
    block_write_bytes: int = 0


class InstallOutcome:
    """How an install script ended: exit code (``None`` on timeout) and its last output lines."""

    def __init__(self, exit_code: int | None, output: str) -> None:
        self.exit_code = exit_code
        self.output = output

    def tail(self, lines: int = _OUTPUT_LINES) -> str:
        """The last ``lines`` lines, or ``(no output)`` when the script printed nothing."""
        text = "\n".join(self.output.rstrip("\n").splitlines()[-lines:])
        return text if text.strip() else "(no output)"


class EventWatch(Protocol):
    """An open event stream; ``close()`` ends it (the backend is not marked lost)."""

    async def close(self) -> None: ...


class Backend(Protocol):
    """A container engine for one node: bounded calls, ownership labels, reconnection.

    Every call is bounded by ``call_seconds`` unless it takes its own ``timeout``; ``what``
    names the step for the message of a timeout. Every lookup sees only containers labelled
    with this node's id.
    """

    available: bool
    error: str | None
    lost: asyncio.Event
    """Set while the engine is unreachable; cleared by a successful :meth:`connect`."""

    @property
    def call_seconds(self) -> float: ...

    async def connect(self) -> bool:
        """Try to (re)connect; return whether the engine answered."""
        ...

    def close(self) -> None: ...

    def health(self) -> dict[str, object]: ...

    def unavailable_message(self) -> str: ...

    async def watch(self, deliver: Callable[[EngineEvent], None]) -> EventWatch:
        """Open the event stream; ``deliver`` is called on the event loop for every event.

        When the stream breaks the backend marks itself lost (``lost`` is set).
        """
        ...

    async def list_owned(
        self, server: str | None = None, role: Role | None = None, *, what: str = ...
    ) -> list[ContainerInfo]: ...

    async def inspect(self, container_id: str, *, what: str = ...) -> ContainerInfo | None:
        """The owned container of this id, or ``None``."""
        ...

    async def find(
        self, server: str, role: Role = "server", *, what: str = ...
    ) -> ContainerInfo | None: ...

    async def has_image(self, image: str) -> bool:
        """Whether the engine holds the image now (a lookup only: never pulls)."""
        ...

    async def ensure_image(self, image: str, *, timeout: float) -> None:
        """Raise :class:`ImageMissing` if the image is absent and cannot be pulled."""
        ...

    async def ensure_volume(self, spec: ContainerSpec) -> None: ...

    async def remove_volume(self, server: str) -> None: ...

    async def remove(self, container_id: str, *, what: str = ...) -> None: ...

    async def remove_role(self, server: str, role: Role, *, what: str = ...) -> None: ...

    async def create_server(self, spec: ContainerSpec) -> ContainerInfo:
        """Create (not start) the server's main container."""
        ...

    async def run_install(
        self, spec: ContainerSpec, limit: float, output: Callable[[str], None] | None = None
    ) -> InstallOutcome:
        """Run the install script in its own container (removed after), bounded by ``limit``.

        The output keeps the order the script wrote it in, stdout and stderr together; each
        line is handed to ``output`` (on the event loop) as the script prints it.
        """
        ...

    async def start(self, container_id: str) -> ContainerInfo:
        """Start, then inspect (state and published ports). :class:`PortInUse` if taken."""
        ...

    async def stop(self, container_id: str, seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``seconds`` (rounded up to whole seconds)."""
        ...

    async def kill(self, container_id: str) -> None:
        """SIGKILL and wait for the exit (a container that is not running is fine)."""
        ...

    async def output(self, container_id: str, tail: int | Literal["all"] = "all") -> str: ...

    async def follow(
        self, container_id: str, tail: int | Literal["all"], shaper: LineShaper | None = None
    ) -> AsyncIterator[Shaped]:
        """Lines of output as they come, until the container stops or the consumer leaves.

        ``shaper`` (:mod:`.lines`) bounds and throttles them where they are read; without one
        every line comes whole. A :class:`~.lines.Dropped` marks lines the throttle dropped.
        """
        ...

    async def write_stdin(self, container_id: str, data: bytes) -> None:
        """Write ``data`` to the running container's stdin (attached, not an exec)."""
        ...

    async def stats(self, container_id: str) -> Usage: ...

    async def exec(
        self, container_id: str, argv: list[str], timeout: float
    ) -> tuple[int | None, str]: ...


def from_nanoseconds(value: int) -> datetime:
    """An engine's ``timeNano`` -> aware ``datetime`` (microseconds, like its timestamps)."""
    seconds, nanos = divmod(value, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
