"""What the Docker SDK backend hands to and reads from the engine, as pure functions.

Inspect attributes -> :class:`~lightd_agent.backend.base.ContainerInfo`, raw events ->
:class:`~lightd_agent.backend.base.EngineEvent`, stats -> :class:`~lightd_agent.backend.base.Usage`,
and a spec -> the names, labels and keyword arguments of ``containers.create``. Nothing here
calls the engine, so none of it imports ``docker``.
"""

from __future__ import annotations

import math
from typing import Any

from lightd_agent.backend.base import (
    LABEL_NODE,
    LABEL_ROLE,
    LABEL_SCOPE,
    LABEL_SERVER,
    LABEL_SPEC,
    VOLUME_PREFIX,
    ContainerInfo,
    EngineEvent,
    Role,
    Usage,
)
from lightd_agent.resources import block_io
from lightd_agent.state import parse_docker_time
from lightd_shared.containers import ContainerSpec, PortMapping, parse_memory, parse_volume

__all__ = ["Naming", "event_from_raw", "info_from_attrs", "stop_seconds", "usage_from_stats"]


def stop_seconds(seconds: float) -> int:
    """Docker's stop grace is whole seconds: round up, so "500ms" is 1 s, not an instant kill."""
    return max(0, math.ceil(seconds))


def ports_from_attrs(attrs: dict[str, Any]) -> tuple[PortMapping, ...]:
    raw: dict[str, Any] = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    published = []
    for key, bindings in raw.items():
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
    return tuple(sorted(published, key=lambda p: (p.container, p.protocol)))


def info_from_attrs(attrs: dict[str, Any]) -> ContainerInfo:
    """An inspect's attributes (``containers.get``/``inspect_container``) -> ContainerInfo."""
    raw_state = attrs.get("State")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    code = state.get("ExitCode")
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        running=bool(state.get("Running")),
        exit_code=int(code) if code is not None else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")),
        ports=ports_from_attrs(attrs),
        stdin_open=bool((attrs.get("Config") or {}).get("OpenStdin")),
    )


def event_from_raw(raw: dict[str, Any]) -> EngineEvent | None:
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    action = raw.get("Action") or raw.get("status")
    if action not in ("die", "oom", "start"):
        return None
    code = attrs.get("exitCode")
    exit_code = int(code) if code is not None and str(code).lstrip("-").isdigit() else None
    when = raw.get("timeNano")
    return EngineEvent(
        action=action,
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        server=str(attrs.get(LABEL_SERVER) or ""),
        role=str(attrs.get(LABEL_ROLE) or ""),
        exit_code=exit_code,
        time_ns=when if isinstance(when, int) and when > 0 else None,
    )


def usage_from_stats(raw: dict[str, Any]) -> Usage:
    """One ``stats(stream=False)`` answer -> CPU percent, memory and network totals."""
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
    read, written = block_io(raw)
    return Usage(
        cpu_percent=round(max(percent, 0.0), 3),
        memory_usage=int(memory.get("usage", 0)),
        memory_limit=int(memory.get("limit", 0)),
        network_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks.values()),
        network_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks.values()),
        block_read_bytes=read,
        block_write_bytes=written,
    )


class Naming:
    """Names, labels and create arguments of one node's containers and volumes.

    With a ``scope`` (``docker.scope``; the compose cluster sets its project name) everything
    also carries ``lightd.scope=<scope>`` and the scope is part of its name, so two clusters
    whose agents share node ids on one engine stay apart.
    """

    def __init__(self, node_id: str, scope: str = "") -> None:
        self.node_id = node_id
        self.scope = scope

    @property
    def _owner(self) -> str:
        """The node id, after the scope when there is one: the middle of every name."""
        return f"{self.scope}-{self.node_id}" if self.scope else self.node_id

    def owner_labels(self) -> dict[str, str]:
        labels = {LABEL_NODE: self.node_id}
        if self.scope:
            labels[LABEL_SCOPE] = self.scope
        return labels

    def owns(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return labels.get(LABEL_NODE) == self.node_id and labels.get(LABEL_SCOPE, "") == self.scope

    def container_name(self, server: str, role: Role = "server") -> str:
        name = f"lightd-{self._owner}-{server}"
        return name if role == "server" else f"{name}-install"

    def volume_name(self, server: str) -> str:
        return f"{VOLUME_PREFIX}{self._owner}-{server}-data"

    def labels(self, spec: ContainerSpec, role: Role) -> dict[str, str]:
        labels = dict(spec.labels)
        labels.update(self.owner_labels())
        labels.update({LABEL_SERVER: spec.id, LABEL_ROLE: role})
        if role == "server":
            labels[LABEL_SPEC] = spec.model_dump_json()
        return labels

    def owned_filter(self, server: str | None = None, role: Role | None = None) -> list[str]:
        selectors = [f"{key}={value}" for key, value in self.owner_labels().items()]
        if server is not None:
            selectors.append(f"{LABEL_SERVER}={server}")
        if role is not None:
            selectors.append(f"{LABEL_ROLE}={role}")
        return selectors

    def _mounts(self, spec: ContainerSpec) -> dict[str, dict[str, str]]:
        mounts = {self.volume_name(spec.id): {"bind": "/data", "mode": "rw"}}
        for entry in spec.volumes:
            source, target, read_only = parse_volume(entry)
            mounts[source] = {"bind": target, "mode": "ro" if read_only else "rw"}
        return mounts

    def server_kwargs(self, spec: ContainerSpec) -> dict[str, Any]:
        """The keyword arguments of ``containers.create`` for the server's main container."""
        command: list[str] | None
        if isinstance(spec.startup_command, str):
            command = ["/bin/sh", "-c", spec.startup_command]
        else:
            command = spec.startup_command
        ports: dict[str, int | None] = {f"{p.container}/{p.protocol}": p.host for p in spec.ports}
        kwargs: dict[str, Any] = {
            "name": self.container_name(spec.id),
            "labels": self.labels(spec, "server"),
            "environment": dict(spec.env),
            "ports": ports,
            "volumes": self._mounts(spec),
            "restart_policy": {"Name": "no"},
            # stdin kept open, no tty: the console writes lines to it, and stdout and stderr
            # stay two streams (the logs read them as before). detach: docker-py otherwise
            # sets StdinOnce, and the first attach that ends would close the server's stdin.
            "stdin_open": True,
            "tty": False,
            "detach": True,
            "privileged": spec.privileged,
            "network_mode": spec.network_mode,
        }
        if command is not None:
            # The startup command is the whole argv: the image's ENTRYPOINT would otherwise
            # be put in front of it (``ENTRYPOINT ["app"]`` + ``/bin/sh -c ...`` runs
            # ``app /bin/sh -c ...``). Without one, the image's ENTRYPOINT and CMD run as built.
            kwargs["command"] = command
            kwargs["entrypoint"] = []
        if spec.pid_mode == "host":
            kwargs["pid_mode"] = "host"
        if spec.cap_add:
            kwargs["cap_add"] = list(spec.cap_add)
        if spec.limits.memory is not None:
            kwargs["mem_limit"] = parse_memory(spec.limits.memory)
        if spec.limits.cpu is not None:
            kwargs["nano_cpus"] = int(spec.limits.cpu * 1_000_000_000)
        if spec.network_mode != "bridge":
            kwargs.pop("ports")
        return kwargs
