"""Every Docker SDK call the agent makes, and the rules that keep them safe.

- docker-py is synchronous: each call runs in ``asyncio.to_thread`` and is bounded by
  ``docker.call_timeout`` (:meth:`DockerBackend.call`), so a hung engine gives a clear
  :class:`~lightd_agent.errors.DockerTimeout` instead of wedging a server.
- Ownership: everything the agent creates carries ``lightd.node=<node id>`` and
  ``lightd.server=<server id>`` (and ``lightd.role``: ``server`` or ``install``). Every lookup
  filters on the node label, so several agents can share one engine and none ever touches a
  container it does not own. With ``docker.scope`` set (the compose cluster sets its project
  name) everything also carries ``lightd.scope=<scope>`` and the scope is part of its name, so
  two clusters whose agents share node ids on one engine stay apart.
- Losing the engine marks the backend unavailable (calls answer 503); the manager's watchdog
  reconnects with a fresh client when it answers again.
- Docker's event stream is read in one thread (:class:`EventReader`); ``close()`` from another
  thread ends it, as docker-py's ``CancellableStream`` allows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from lightd_agent.config import DockerSection
from lightd_agent.errors import DockerTimeout, Unavailable
from lightd_shared.containers import ContainerSpec, parse_memory, parse_volume

__all__ = [
    "LABEL_NODE",
    "LABEL_ROLE",
    "LABEL_SCOPE",
    "LABEL_SERVER",
    "LABEL_SPEC",
    "VOLUME_PREFIX",
    "DockerBackend",
    "EventReader",
    "InstallOutcome",
    "ports_of",
    "stop_seconds",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_NODE = "lightd.node"
LABEL_SERVER = "lightd.server"
LABEL_ROLE = "lightd.role"
LABEL_SPEC = "lightd.spec"
LABEL_SCOPE = "lightd.scope"
"""The spec as JSON, so a server can be rebuilt from Docker alone if the state dir is lost."""

VOLUME_PREFIX = "lightd-"
"""Every server's own volume is named ``lightd-<node>-<server>-data``; requests may not use it."""

Role = Literal["server", "install"]
_OUTPUT_LINES = 20


class InstallOutcome:
    """How an install script ended: exit code (``None`` on timeout) and its last output lines."""

    def __init__(self, exit_code: int | None, output: str) -> None:
        self.exit_code = exit_code
        self.output = output

    def tail(self, lines: int = _OUTPUT_LINES) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, docker.errors.APIError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError):
        return True
    if isinstance(exc, docker.errors.DockerException):
        return "Error while fetching server API version" in str(exc)
    return False


class DockerBackend:
    """A Docker client for one node: bounded calls, ownership labels, reconnection."""

    def __init__(
        self, config: DockerSection, node_id: str, volumes_dir: Path | None = None
    ) -> None:
        self.config = config
        self.node_id = node_id
        # Where servers' own volumes keep their files (storage.base_path/volumes/<id>); None
        # leaves them in Docker's own volume directory.
        self.volumes_dir = volumes_dir.resolve() if volumes_dir is not None else None
        self._client: docker.DockerClient | None = None
        self.available = False
        self.error: str | None = "not connected yet"
        self.engine_version: str | None = None
        self.lost = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- connection -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return "unix://" + self.config.socket_path

    @property
    def call_seconds(self) -> float:
        return self.config.call_timeout.total_seconds()

    def _connect_sync(self) -> docker.DockerClient:
        # Probe the socket ourselves first: docker-py leaks the socket of a failed connect,
        # and the watchdog retries every reconnect_interval while the engine is away.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(self.call_seconds)
            probe.connect(self.config.socket_path)
        client = docker.DockerClient(
            base_url=self.base_url, version="auto", timeout=max(1, int(self.call_seconds))
        )
        try:
            client.ping()
            self.engine_version = str(client.version().get("Version", "unknown"))
        except Exception:
            client.close()
            raise
        return client

    async def connect(self) -> bool:
        """Try to (re)connect with a fresh client; return whether the engine answered."""
        self._loop = asyncio.get_running_loop()
        try:
            client = await asyncio.wait_for(
                asyncio.to_thread(self._connect_sync), timeout=self.call_seconds
            )
        except Exception as exc:
            self._mark_lost(f"{type(exc).__name__}: {exc}")
            return False
        old, self._client = self._client, client
        if old is not None:
            old.close()
        self.available = True
        self.error = None
        self.lost.clear()
        return True

    def _mark_lost(self, reason: str) -> None:
        if self.available:
            log.warning(
                "Docker engine unreachable at %s (%s); container calls answer 503 and the "
                "agent reconnects by itself",
                self.config.socket_path,
                reason,
            )
        self.available = False
        self.error = reason
        self.lost.set()

    def mark_lost_threadsafe(self, reason: str) -> None:
        """Called from the event reader's thread when the stream breaks."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._mark_lost, reason)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.available = False

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None or not self.available:
            raise Unavailable(self.unavailable_message())
        return self._client

    def unavailable_message(self) -> str:
        return (
            f"the Docker engine at {self.config.socket_path} is unreachable "
            f"({self.error or 'unknown reason'}); the agent reconnects by itself, retry shortly"
        )

    def health(self) -> dict[str, Any]:
        info: dict[str, Any] = {"reachable": self.available, "socket": self.config.socket_path}
        if self.available:
            info["version"] = self.engine_version
        else:
            info["error"] = self.error
        return info

    async def call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn`` in a thread, bounded by ``timeout`` (default ``docker.call_timeout``).

        Connection failures mark the engine lost and raise 503; a call that does not answer
        in time raises 504 naming ``what`` it was doing. Docker API errors pass through.
        """
        if not self.available:
            raise Unavailable(self.unavailable_message())
        limit = self.call_seconds if timeout is None else timeout
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(functools.partial(fn, *args, **kwargs)), timeout=limit
            )
        except TimeoutError as exc:
            raise DockerTimeout(
                f"Docker did not answer within {limit:g}s while {what}; the engine may be "
                "overloaded or stuck: check `docker info`, then retry"
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise DockerTimeout(
                f"Docker did not answer in time while {what}; check `docker info`, then retry"
            ) from exc
        except Exception as exc:
            if _is_connection_error(exc):
                self._mark_lost(f"{type(exc).__name__}: {exc}")
                raise Unavailable(self.unavailable_message()) from exc
            raise

    # -- names and labels -------------------------------------------------------------------

    @property
    def _owner(self) -> str:
        """The node id, after the scope when there is one: the middle of every name."""
        scope = self.config.scope
        return f"{scope}-{self.node_id}" if scope else self.node_id

    def _owner_labels(self) -> dict[str, str]:
        labels = {LABEL_NODE: self.node_id}
        if self.config.scope:
            labels[LABEL_SCOPE] = self.config.scope
        return labels

    def container_name(self, server: str, role: Role = "server") -> str:
        name = f"lightd-{self._owner}-{server}"
        return name if role == "server" else f"{name}-install"

    def volume_name(self, server: str) -> str:
        return f"{VOLUME_PREFIX}{self._owner}-{server}-data"

    def labels(self, spec: ContainerSpec, role: Role) -> dict[str, str]:
        labels = dict(spec.labels)
        labels.update(self._owner_labels())
        labels.update({LABEL_SERVER: spec.id, LABEL_ROLE: role})
        if role == "server":
            labels[LABEL_SPEC] = spec.model_dump_json()
        return labels

    def owned_filter(self, server: str | None = None, role: Role | None = None) -> list[str]:
        selectors = [f"{key}={value}" for key, value in self._owner_labels().items()]
        if server is not None:
            selectors.append(f"{LABEL_SERVER}={server}")
        if role is not None:
            selectors.append(f"{LABEL_ROLE}={role}")
        return selectors

    def is_owned(self, container: Container) -> bool:
        return self._owns(container.labels)

    def _owns(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return labels.get(LABEL_NODE) == self.node_id and labels.get(LABEL_SCOPE, "") == (
            self.config.scope
        )

    # -- synchronous operations (run them through call()) -----------------------------------

    def list_owned(self, server: str | None = None, role: Role | None = None) -> list[Container]:
        found = self.client.containers.list(
            all=True, filters={"label": self.owned_filter(server, role)}
        )
        return [c for c in found if self.is_owned(c)]

    def find(self, server: str, role: Role = "server") -> Container | None:
        """The owned container of ``server`` with ``role``, or ``None``."""
        for container in self.list_owned(server, role):
            return container
        return None

    def inspect(self, container_id: str) -> Container | None:
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        return container if self.is_owned(container) else None

    def ensure_image(self, image: str) -> None:
        """Raise ``docker.errors.ImageNotFound`` with a plain message if absent and unpullable."""
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.pull(image)
        except docker.errors.APIError as exc:
            explanation = exc.explanation or str(exc)
            raise docker.errors.ImageNotFound(
                f"image '{image}' not found locally and could not be pulled: {explanation}"
            ) from exc

    def ensure_volume(self, spec: ContainerSpec) -> str:
        """Create the server's volume, or keep the one that exists: one Docker call.

        Docker answers a create of an existing local volume with that volume (a reinstall
        keeps its data); a ``409 Conflict`` (same name, another driver) also means it exists.
        Asking ``volumes.get`` first would cost a round trip on every install.
        """
        name = self.volume_name(spec.id)
        labels = dict(spec.labels)
        labels.update(self._owner_labels())
        labels[LABEL_SERVER] = spec.id
        options: dict[str, Any] = {}
        if self.volumes_dir is not None:
            # A local volume bound to storage.base_path/volumes/<id>: the server's files live
            # under the agent's storage (backed up with it), and Docker still mounts it by name.
            directory = self.volumes_dir / spec.id
            directory.mkdir(parents=True, exist_ok=True)
            options = {
                "driver": "local",
                "driver_opts": {"type": "none", "o": "bind", "device": str(directory)},
            }
        try:
            self.client.volumes.create(name=name, labels=labels, **options)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        return name

    def remove_volume(self, server: str) -> None:
        try:
            volume = self.client.volumes.get(self.volume_name(server))
        except docker.errors.NotFound:
            volume = None
        if volume is not None:
            if not self._owns(volume.attrs.get("Labels")):
                return
            volume.remove(force=True)
        if self.volumes_dir is not None:
            directory = self.volumes_dir / server
            try:
                shutil.rmtree(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning(
                    "server %s: its volume was removed from Docker but its files at %s could "
                    "not be deleted (%s); files a container wrote as root need root to delete: "
                    "remove the directory by hand",
                    server,
                    directory,
                    exc,
                )

    def remove(self, container: Container) -> None:
        if not self.is_owned(container):  # pragma: no cover - every caller passes owned ones
            raise RuntimeError(f"refusing to remove container {container.id} not owned by us")
        try:
            container.remove(force=True, v=False)
        except docker.errors.NotFound:
            pass

    def remove_role(self, server: str, role: Role) -> None:
        for container in self.list_owned(server, role):
            self.remove(container)

    def _mounts(self, spec: ContainerSpec) -> dict[str, dict[str, str]]:
        mounts = {self.volume_name(spec.id): {"bind": "/data", "mode": "rw"}}
        for entry in spec.volumes:
            source, target, read_only = parse_volume(entry)
            mounts[source] = {"bind": target, "mode": "ro" if read_only else "rw"}
        return mounts

    def create_install(self, spec: ContainerSpec) -> Container:
        assert spec.install_script is not None
        return self.client.containers.create(
            spec.image,
            command=["/bin/sh", "-c", spec.install_script],
            entrypoint=[],
            name=self.container_name(spec.id, "install"),
            labels=self.labels(spec, "install"),
            environment=dict(spec.env),
            volumes={self.volume_name(spec.id): {"bind": "/data", "mode": "rw"}},
            working_dir="/data",
        )

    def start(self, container: Container) -> None:
        container.start()

    def wait(self, container: Container, seconds: float) -> int:
        result = container.wait(timeout=seconds)
        return int(result.get("StatusCode", -1))

    def output(self, container: Container, tail: int | Literal["all"] = "all") -> str:
        data = container.logs(stdout=True, stderr=True, tail=tail)
        return bytes(data).decode("utf-8", "replace")

    def create_server(self, spec: ContainerSpec) -> Container:
        """Create (not start) the server's main container from its spec."""
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
        return self.client.containers.create(spec.image, **kwargs)

    def stop(self, container: Container, seconds: float) -> None:
        container.stop(timeout=stop_seconds(seconds))

    def kill(self, container: Container) -> None:
        try:
            container.kill()
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise

    def state(self, container: Container) -> dict[str, Any]:
        container.reload()
        state: dict[str, Any] = container.attrs.get("State", {})
        return state

    def published_ports(self, container: Container) -> dict[str, Any]:
        container.reload()
        return ports_of(container)

    def reload(self, container: Container) -> Container:
        """One inspect: state and published ports both come from ``container.attrs`` after."""
        container.reload()
        return container

    def stats(self, container: Container) -> dict[str, Any]:
        stats = container.stats(stream=False)
        assert isinstance(stats, dict)
        return stats

    def exec(self, container: Container, command: list[str]) -> tuple[int | None, str]:
        api = self.client.api
        exec_id = api.exec_create(container.id, command, stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (None if code is None else int(code)), bytes(output).decode("utf-8", "replace")


def stop_seconds(seconds: float) -> int:
    """Docker's stop grace is whole seconds: round up, so "500ms" is 1 s, not an instant kill."""
    return max(0, math.ceil(seconds))


def ports_of(container: Container) -> dict[str, Any]:
    """``NetworkSettings.Ports`` of an inspected container (no Docker call)."""
    ports: dict[str, Any] = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    return ports


class EventReader:
    """Reads Docker's event stream for this node's containers in a thread.

    Events go to ``deliver`` (called in the reader thread; it must hand them to the loop).
    When the stream breaks (engine lost) ``on_lost`` is called once; ``close()`` ends the
    stream from any thread without calling it.
    """

    def __init__(
        self,
        backend: DockerBackend,
        deliver: Callable[[dict[str, Any]], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.deliver = deliver
        self.on_lost = on_lost
        self._stream: Any = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Open the stream (in the caller's thread, so a failure is seen) and start reading."""
        client = self.backend.client
        self._stream = client.events(
            decode=True,
            filters={
                "type": ["container"],
                "label": self.backend.owned_filter(),
                "event": ["die", "oom", "start"],
            },
        )
        self._thread = threading.Thread(
            target=self._run, name=f"docker-events:{self.backend.node_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        reason = "Docker's event stream ended"
        try:
            for event in self._stream:
                if self._closing.is_set():
                    return
                if isinstance(event, dict):
                    self.deliver(event)
        except Exception as exc:
            reason = f"Docker's event stream broke: {type(exc).__name__}: {exc}"
        if not self._closing.is_set():
            self.on_lost(reason)

    def close(self) -> None:
        self._closing.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # pragma: no cover - closing a broken socket
                log.debug("closing the Docker event stream failed", exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
