"""The agent's container ("server") API: specs, states, status views and action bodies.

A *server* is one container the agent manages, named by the operator's ``id`` (the id used in
remote-sync updates). The spec is what an operator (or, later, the coordinator) sends to
``POST /containers``; everything else here is what the agent answers.

States, exactly these words::

    installing -> ready -> running -> stopping -> stopped
                     \\         \\-> crashed (exited without being asked; restarted by the policy)
                      \\-> failed (install, reinstall or recovery could not complete)
"""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator

from lightd_shared.base import Payload, Request
from lightd_shared.durations import Duration, parse_duration
from lightd_shared.quota import parse_disk
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier, Labels, Port

__all__ = [
    "CONTAINER_STATES",
    "RESERVED_LABELS",
    "ActionBody",
    "AgentHealth",
    "ContainerList",
    "ContainerSpec",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "ContainerView",
    "ExecRequest",
    "ExecResult",
    "Limits",
    "PortMapping",
    "RestartPolicy",
    "ServerEvent",
    "ServerFacts",
    "parse_memory",
    "parse_volume",
]

ContainerState = Literal[
    "installing", "ready", "running", "stopping", "stopped", "crashed", "failed"
]
CONTAINER_STATES: tuple[str, ...] = typing.get_args(ContainerState)

_MEMORY = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024**2
"""Docker refuses memory limits below 6 MiB."""

RESERVED_LABELS: frozenset[str] = frozenset(
    {"lightd.node", "lightd.server", "lightd.role", "lightd.spec", "lightd.scope"}
)
"""Ownership labels the agent puts on its containers; a spec may not set them."""

_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_memory(value: int | str) -> int:
    """``"512m"``, ``"1g"``, ``"65536k"`` or a byte count -> bytes (Docker's own units)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a byte count or a size such as '512m'")
    if isinstance(value, int):
        amount = value
    else:
        match = _MEMORY.fullmatch(value.strip())
        if not match:
            raise ValueError(
                f"invalid memory limit {value!r}; write a byte count or a size such as "
                "'512m' or '1g' (units b, k, m, g)"
            )
        amount = int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
    if amount < MIN_MEMORY:
        raise ValueError(f"memory limit {value!r} is below Docker's minimum of 6m")
    return amount


def _check_memory(value: int | str | None) -> int | str | None:
    if value is not None:
        parse_memory(value)
    return value


def parse_volume(spec: str) -> tuple[str, str, bool]:
    """``"SOURCE:TARGET[:ro|:rw]"`` -> ``(source, target, read_only)``; raise ``ValueError``."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"volume {spec!r} must be 'SOURCE:TARGET' or 'SOURCE:TARGET:ro'")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ValueError(f"volume {spec!r}: mode must be 'ro' or 'rw', not {mode!r}")
    if not source.startswith("/") and not _VOLUME_NAME.fullmatch(source):
        raise ValueError(
            f"volume {spec!r}: SOURCE must be a volume name (letters, digits, '_.-') "
            "or an absolute path"
        )
    if not target.startswith("/") or target == "/":
        raise ValueError(f"volume {spec!r}: TARGET must be an absolute path inside the container")
    if ".." in source.split("/") or ".." in target.split("/"):
        raise ValueError(f"volume {spec!r}: paths must not contain '..'")
    return source, target, mode == "ro"


def _check_volume(value: str) -> str:
    parse_volume(value)
    return value


MemorySize = Annotated[
    int | str,
    AfterValidator(_check_memory),
    Field(description="Bytes, or a size such as '512m' / '1g'", examples=["512m"]),
]
VolumeSpec = Annotated[str, AfterValidator(_check_volume)]


def _check_disk(value: int | str | None) -> int | str | None:
    if value is not None:
        parse_disk(value)
    return value


DiskSize = Annotated[
    int | str,
    AfterValidator(_check_disk),
    Field(
        description="Bytes, or a size such as '512m' / '10g' (8m to 16t): an enforced disk quota",
        examples=["512m"],
    ),
]


class PortMapping(Request):
    """``{"container": 8080, "host": 18080, "protocol": "tcp"}``; ``host`` omitted: Docker picks."""

    container: Port
    host: Port | None = None
    protocol: Literal["tcp", "udp"] = "tcp"


class Limits(Request):
    """Resource limits: ``memory`` (bytes or ``"512m"``), ``cpu`` (cores, e.g. ``1.5``) and
    ``disk`` (bytes or ``"10g"``: the volume becomes a fixed-size ext4 image, see
    :mod:`lightd_shared.quota`)."""

    memory: MemorySize | None = None
    cpu: float | None = Field(default=None, gt=0, le=1024, description="CPU cores, e.g. 0.5")
    disk: DiskSize | None = None


class RestartPolicy(Request):
    """The crash policy: restart a crashed server up to ``max_restarts`` times per ``window``.

    ``{"enabled": false}`` (or ``max_restarts: 0``) leaves a crashed server ``crashed``.
    """

    enabled: bool = True
    max_restarts: int = Field(default=3, ge=0, le=1000)
    window: Duration = Field(default=parse_duration("60s"))


class ContainerSpec(Request):
    """``POST /containers``: what to run and how. Unknown fields are refused."""

    id: Identifier = Field(description="The server id, also used in remote-sync updates")
    image: str = Field(min_length=1, max_length=512, pattern=r"^[^\s]+$")
    startup_command: str | list[str] | None = Field(
        default=None,
        description="A string runs with /bin/sh -c; a list runs as is; omitted: image default",
    )
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[PortMapping] = Field(default_factory=list, max_length=100)
    limits: Limits = Field(default_factory=Limits)
    volumes: list[VolumeSpec] = Field(default_factory=list, max_length=50)
    labels: Labels = Field(default_factory=dict)
    install_script: str | None = Field(
        default=None, description="Run with /bin/sh in a one-off container before creating"
    )
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)
    start_on_completion: bool = True
    # Options the agent's policy refuses unless its config allows them.
    privileged: bool = False
    network_mode: Literal["bridge", "host", "none"] = "bridge"
    pid_mode: Literal["private", "host"] = "private"
    cap_add: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "=" in name or "\x00" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name in RESERVED_LABELS:
                raise ValueError(
                    f"label {name!r} is reserved: the agent sets it to mark what it owns"
                )
        return value

    @field_validator("startup_command")
    @classmethod
    def _command_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("startup_command list must not be empty")
        if isinstance(value, str) and not value.strip():
            raise ValueError("startup_command must not be empty")
        return value

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, value: list[PortMapping]) -> list[PortMapping]:
        seen: set[tuple[int, str]] = set()
        hosts: set[tuple[int, str]] = set()
        for mapping in value:
            key = (mapping.container, mapping.protocol)
            if key in seen:
                raise ValueError(f"container port {mapping.container}/{mapping.protocol} twice")
            seen.add(key)
            if mapping.host is not None:
                host = (mapping.host, mapping.protocol)
                if host in hosts:
                    raise ValueError(f"host port {mapping.host}/{mapping.protocol} twice")
                hosts.add(host)
        return value


class ActionBody(Request):
    """``POST /containers/{id}/stop|restart``: ``{"timeout": "10s"}`` before the kill."""

    timeout: Duration = Field(default=parse_duration("10s"))


class ServerFacts(Payload):
    """What is known of a server's run: the fields its status view and its state file share.

    ``id`` comes first on the wire; the state file (``lightd_agent.state.StoredServer``) has
    none of its own (its ``spec`` holds it) and so leaves it ``None``.
    """

    id: str | None = None
    state: ContainerState
    error: str | None = None
    exit_code: int | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    container_id: str | None = None


class ContainerStatus(ServerFacts):
    """``GET /containers/{id}/status``."""

    id: str
    restarts: int = Field(default=0, ge=0, description="Restarts by the crash policy in window")


class ContainerView(ContainerStatus):
    """``GET /containers/{id}``: the status plus the spec and the published ports."""

    spec: ContainerSpec
    ports: list[PortMapping] = Field(default_factory=list, description="Ports as published")


class ContainerList(Payload):
    """``GET /containers``."""

    containers: list[ContainerView] = Field(default_factory=list)
    count: int = Field(ge=0)


class ExecRequest(Request):
    """``POST /containers/{id}/exec``: a string runs with /bin/sh -c, a list as is."""

    command: str | list[str]
    timeout: Duration = Field(default=parse_duration("30s"))

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("command must not be empty")
        return value


class ExecResult(Payload):
    """The exec answer: ``status`` is ``success``, ``failed`` (non-zero exit) or ``timeout``."""

    id: str
    status: Literal["success", "failed", "timeout"]
    exit_code: int | None = None
    output: str = ""
    duration: Duration = timedelta(0)


class ContainerStats(Payload):
    """``GET /containers/{id}/stats``: one sample."""

    id: str
    cpu_percent: float = 0.0
    memory_usage: int = 0
    memory_limit: int = 0
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    block_read_bytes: int = 0
    block_write_bytes: int = 0
    timestamp: Timestamp


class AgentHealth(Payload):
    """``GET /health``: always answered, without auth, even when Docker is down.

    Extra sections (``remote`` from remote sync) are kept: extra fields are allowed here.
    """

    model_config = ConfigDict(
        extra="allow", strict=True, validate_assignment=True, populate_by_name=True
    )

    status: Literal["ok", "degraded"]
    version: str
    node: dict[str, Any] = Field(default_factory=dict)
    started_at: Timestamp
    uptime: Duration
    docker: dict[str, Any] = Field(default_factory=dict)
    containers: dict[str, int] = Field(default_factory=dict)


class ServerEvent(Payload):
    """One lifecycle event on the agent's ``GET /events`` SSE stream (the ``data:`` line).

    ``kind`` is the remote-sync seed's lifecycle name (``Started``, ``CreatingContainer``,
    ``Ready``, ``Error``, ``ReinstallStarted``) or a runtime one (``Running``, ``Stopped``,
    ``Crashed``, ``Deleted``); ``id`` repeats the SSE ``id:`` line.

    Read from the agent's own event object by its attributes (``ServerEvent.model_validate(
    event)``), so the field list is not copied out by hand once more.
    """

    model_config = ConfigDict(**Payload.model_config, from_attributes=True)

    id: int = Field(ge=0)
    server: str
    kind: str
    state: str
    error: str | None = None
    data: str | None = None
    exit_code: int | None = None
    timestamp: Timestamp
