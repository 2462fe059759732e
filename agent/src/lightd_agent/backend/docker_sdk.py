"""The :class:`~lightd_agent.backend.base.Backend` on the Docker SDK: the only module of the
agent that imports ``docker``.

- docker-py is synchronous: each call runs in ``asyncio.to_thread`` and is bounded by
  ``docker.call_timeout`` (:meth:`DockerBackend.call`), so a hung engine gives a clear
  :class:`~lightd_agent.errors.DockerTimeout` instead of wedging a server.
- SDK objects never leave this module: containers become
  :class:`~lightd_agent.backend.base.ContainerInfo`, events
  :class:`~lightd_agent.backend.base.EngineEvent`, ``APIError`` an
  :class:`~lightd_agent.backend.base.EngineError`.
- Ownership: everything the agent creates carries ``lightd.node=<node id>`` and
  ``lightd.server=<server id>`` (and ``lightd.role``: ``server`` or ``install``). Every lookup
  filters on the node label, so several agents can share one engine and none ever touches a
  container it does not own.
- Losing the engine marks the backend unavailable (calls answer 503); the manager's watchdog
  reconnects with a fresh client when it answers again.
- Docker's event stream is read in one thread (:class:`EventReader`); ``close()`` from another
  thread ends it, as docker-py's ``CancellableStream`` allows.

The translation of the engine's answers lives in :mod:`.docker_translate` and the threaded
stream readers in :mod:`.docker_streams`; neither imports ``docker``.

Over 400 lines on purpose: what is left is one SDK call per method of the interface, each a
blocking body and its bounded async wrapper; splitting them would spread the ``docker`` import
that this seam exists to keep in one module.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import shutil
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types.daemon import CancellableStream

from lightd_agent.backend.base import (
    LABEL_SERVER,
    ContainerInfo,
    EngineError,
    EngineEvent,
    ImageMissing,
    InstallOutcome,
    PortInUse,
    Role,
    Usage,
)
from lightd_agent.backend.docker_streams import EventReader, demux_frames, follow_lines
from lightd_agent.backend.docker_translate import (
    Naming,
    event_from_raw,
    info_from_attrs,
    stop_seconds,
    usage_from_stats,
)
from lightd_agent.backend.lines import LineShaper, Shaped
from lightd_agent.config import DockerSection
from lightd_agent.errors import DockerTimeout, Unavailable
from lightd_shared.containers import ContainerSpec

__all__ = ["ENGINE_API_ERROR", "DockerBackend", "refused_status"]

ENGINE_API_ERROR: type[Exception] = docker.errors.APIError
"""Docker's API error, for the app's last-resort handler (:func:`refused_status`)."""


def refused_status(exc: Exception) -> tuple[int, str]:
    """The answer to a Docker API error that no call turned into an agent error: never a 500.

    Docker's own 404 (the container went away) and 409 (it is dead or being removed, e.g. a
    delete or reinstall racing the call) keep their status; anything else is a 502. Returns
    the status and Docker's own words.
    """
    assert isinstance(exc, docker.errors.APIError)
    code = exc.status_code if exc.status_code in (404, 409) else 502
    return code, str(exc.explanation or exc)


log = logging.getLogger(__name__)

T = TypeVar("T")
_INSTALL_TAIL_LINES = 200
"""Lines of an install's output kept for its outcome (its error message quotes the last)."""
_WHOLE_LINE = 1 << 30
"""A follow without a shaper keeps lines whole (bounded only by memory)."""


def _explain(exc: docker.errors.APIError) -> str:
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or exc)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, docker.errors.APIError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError):
        return True
    if isinstance(exc, docker.errors.DockerException):
        return "Error while fetching server API version" in str(exc)
    return False


class DockerBackend(Naming):
    """A Docker client for one node: bounded calls, ownership labels, reconnection."""

    def __init__(
        self, config: DockerSection, node_id: str, volumes_dir: Path | None = None
    ) -> None:
        super().__init__(node_id, config.scope)
        self.config = config
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

    @property
    def socket_seconds(self) -> int:
        """The Docker client's read timeout: whole seconds, above :attr:`call_seconds`."""
        return math.ceil(self.call_seconds) + 1

    def _connect_sync(self) -> docker.DockerClient:
        # Probe the socket ourselves first: docker-py leaks the socket of a failed connect,
        # and the watchdog retries every reconnect_interval while the engine is away.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(self.call_seconds)
            probe.connect(self.config.socket_path)
        # The socket's read timeout is a backstop that frees a stuck thread. It is a second
        # longer than docker.call_timeout so that call()'s own bound always answers first,
        # with the limit the operator set, instead of racing it at the same instant.
        client = docker.DockerClient(
            base_url=self.base_url, version="auto", timeout=self.socket_seconds
        )
        try:
            client.ping()
            self.engine_version = str(client.version().get("Version", "unknown"))
        except Exception:
            client.close()
            raise
        return client

    async def connect(self) -> bool:
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

    def health(self) -> dict[str, object]:
        info: dict[str, object] = {"reachable": self.available, "socket": self.config.socket_path}
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
        in time raises 504 naming ``what`` it was doing; Docker's API errors become
        :class:`EngineError`.
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
                f"Docker did not answer within its {self.socket_seconds}s read timeout while "
                f"{what}; check `docker info`, then retry"
            ) from exc
        except docker.errors.APIError as exc:
            raise EngineError(_explain(exc)) from exc
        except Exception as exc:
            if _is_connection_error(exc):
                self._mark_lost(f"{type(exc).__name__}: {exc}")
                raise Unavailable(self.unavailable_message()) from exc
            raise

    # -- names and labels -------------------------------------------------------------------

    def _owned(self, container: Container) -> bool:
        return self.owns(container.labels)

    # -- the interface ------------------------------------------------------------------------

    async def watch(self, deliver: Callable[[EngineEvent], None]) -> EventReader:
        loop = asyncio.get_running_loop()

        def hand_over(raw: dict[str, Any]) -> None:
            event = event_from_raw(raw)
            if event is not None:
                loop.call_soon_threadsafe(deliver, event)

        reader = EventReader(self, hand_over, self.mark_lost_threadsafe)
        await self.call("opening Docker's event stream", reader.start)
        return reader

    def _list_sync(self, server: str | None, role: Role | None) -> list[ContainerInfo]:
        found = self.client.containers.list(
            all=True, filters={"label": self.owned_filter(server, role)}
        )
        return [info_from_attrs(c.attrs) for c in found if self._owned(c)]

    async def list_owned(
        self,
        server: str | None = None,
        role: Role | None = None,
        *,
        what: str = "listing this agent's containers",
    ) -> list[ContainerInfo]:
        return await self.call(what, self._list_sync, server, role)

    def _get(self, container_id: str) -> Container | None:
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        return container if self._owned(container) else None

    def _inspect_sync(self, container_id: str) -> ContainerInfo | None:
        container = self._get(container_id)
        return None if container is None else info_from_attrs(container.attrs)

    async def inspect(
        self, container_id: str, *, what: str = "looking up the server's container"
    ) -> ContainerInfo | None:
        return await self.call(what, self._inspect_sync, container_id)

    async def find(
        self, server: str, role: Role = "server", *, what: str = "looking up the server's container"
    ) -> ContainerInfo | None:
        found = await self.call(what, self._list_sync, server, role)
        return found[0] if found else None

    def _has_image_sync(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    async def has_image(self, image: str) -> bool:
        return await self.call(f"looking for image {image!r}", self._has_image_sync, image)

    def _ensure_image_sync(self, image: str) -> None:
        if self._has_image_sync(image):
            return
        try:
            self.client.images.pull(image)
        except docker.errors.APIError as exc:
            explanation = exc.explanation or str(exc)
            raise ImageMissing(
                f"image '{image}' not found locally and could not be pulled: {explanation}"
            ) from exc

    async def ensure_image(self, image: str, *, timeout: float) -> None:
        await self.call(
            f"looking for image {image!r}", self._ensure_image_sync, image, timeout=timeout
        )

    def _ensure_volume_sync(self, spec: ContainerSpec) -> None:
        # Docker answers a create of an existing local volume with that volume (a reinstall
        # keeps its data); a 409 (same name, another driver) also means it exists. Asking
        # volumes.get first would cost a round trip on every install.
        labels = dict(spec.labels)
        labels.update(self.owner_labels())
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
            self.client.volumes.create(name=self.volume_name(spec.id), labels=labels, **options)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise

    async def ensure_volume(self, spec: ContainerSpec) -> None:
        await self.call("creating the server's volume", self._ensure_volume_sync, spec)

    def _remove_volume_sync(self, server: str) -> None:
        try:
            volume = self.client.volumes.get(self.volume_name(server))
        except docker.errors.NotFound:
            volume = None
        if volume is not None:
            if not self.owns(volume.attrs.get("Labels")):
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

    async def remove_volume(self, server: str) -> None:
        await self.call("removing the server's volume", self._remove_volume_sync, server)

    @staticmethod
    def _remove_container(container: Container) -> None:
        try:
            container.remove(force=True, v=False)
        except docker.errors.NotFound:
            pass

    def _remove_sync(self, container_id: str) -> None:
        container = self._get(container_id)
        if container is not None:
            self._remove_container(container)

    async def remove(self, container_id: str, *, what: str = "removing a container") -> None:
        await self.call(what, self._remove_sync, container_id)

    def _remove_role_sync(self, server: str, role: Role) -> None:
        found = self.client.containers.list(
            all=True, sparse=True, filters={"label": self.owned_filter(server, role)}
        )
        for container in found:
            self._remove_container(container)

    async def remove_role(
        self, server: str, role: Role, *, what: str = "removing a container"
    ) -> None:
        await self.call(what, self._remove_role_sync, server, role)

    def _create_server_sync(self, spec: ContainerSpec) -> ContainerInfo:
        return info_from_attrs(
            self.client.containers.create(spec.image, **self.server_kwargs(spec)).attrs
        )

    async def create_server(self, spec: ContainerSpec) -> ContainerInfo:
        return await self.call("creating the server's container", self._create_server_sync, spec)

    def _create_install_sync(self, spec: ContainerSpec) -> Container:
        assert spec.install_script is not None
        # stderr joins stdout inside the container, so the output keeps the order the script
        # wrote it in (two streams read back from Docker's log would be two orders).
        return self.client.containers.create(
            spec.image,
            command=["/bin/sh", "-c", "exec 2>&1\n" + spec.install_script],
            entrypoint=[],
            name=self.container_name(spec.id, "install"),
            labels=self.labels(spec, "install"),
            environment=dict(spec.env),
            volumes={self.volume_name(spec.id): {"bind": "/data", "mode": "rw"}},
            working_dir="/data",
        )

    async def run_install(
        self, spec: ContainerSpec, limit: float, output: Callable[[str], None] | None = None
    ) -> InstallOutcome:
        container = await self.call(
            "creating the install container", self._create_install_sync, spec
        )
        tail: deque[str] = deque(maxlen=_INSTALL_TAIL_LINES)
        reader: asyncio.Task[None] | None = None
        try:
            await self.call("starting the install container", container.start)
            # followed from its first line (tail "all"), however fast it ends: each line goes
            # to ``output`` as the script prints it
            lines = await self.follow(str(container.id), "all")

            async def read() -> None:
                async for item in lines:
                    if isinstance(item, str):
                        tail.append(item)
                        if output is not None:
                            output(item)

            reader = asyncio.create_task(read(), name=f"install-output:{spec.id}")
            try:
                code: int | None = await self.call(
                    "running the install script",
                    self._wait_sync,
                    container,
                    limit + self.call_seconds,
                    timeout=limit,
                )
            except DockerTimeout:
                code = None
                await self.call("killing the install container", self._kill_sync, container)
            # the stream ends with the container; a stuck one is cut off after a call's bound
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), timeout=self.call_seconds)
            return InstallOutcome(code, "\n".join(tail))
        finally:
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.call("removing the install container", self._remove_container, container)

    @staticmethod
    def _kill_sync(container: Container) -> None:
        try:
            container.kill()
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise

    @staticmethod
    def _wait_sync(container: Container, seconds: float) -> int:
        result = container.wait(timeout=seconds)
        return int(result.get("StatusCode", -1))

    def _start_sync(self, container_id: str) -> None:
        # by id, without an inspect first: every id here came from this node's own lookups
        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as exc:
            text = _explain(exc)
            if "port is already allocated" in text or "address already in use" in text:
                raise PortInUse(text) from exc
            raise

    async def start(self, container_id: str) -> ContainerInfo:
        await self.call("starting the server's container", self._start_sync, container_id)
        # one inspect after: state and published ports (each call has its own bound)
        attrs = await self.call(
            "reading the server's state", self.client.api.inspect_container, container_id
        )
        return info_from_attrs(attrs)

    def stop_sync(self, container_id: str, seconds: float) -> None:
        """SIGTERM, then SIGKILL after ``seconds`` rounded up (never 0 for a short grace)."""
        self.client.api.stop(container_id, timeout=stop_seconds(seconds))

    async def stop(self, container_id: str, seconds: float) -> None:
        await self.call(
            "stopping the server's container",
            self.stop_sync,
            container_id,
            seconds,
            timeout=self.call_seconds + stop_seconds(seconds),
        )

    def _kill_wait_sync(self, container_id: str) -> None:
        api = self.client.api
        try:
            api.kill(container_id)
        except docker.errors.APIError as exc:
            if "is not running" not in str(exc):
                raise
        api.wait(container_id, timeout=max(1, int(self.call_seconds)))

    async def kill(self, container_id: str) -> None:
        await self.call(
            "killing the server's container",
            self._kill_wait_sync,
            container_id,
            timeout=2 * self.call_seconds,
        )

    def _output_sync(self, container_id: str, tail: int | Literal["all"]) -> str:
        data = self.client.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        return bytes(data).decode("utf-8", "replace")

    async def output(self, container_id: str, tail: int | Literal["all"] = "all") -> str:
        return await self.call("reading logs", self._output_sync, container_id, tail)

    async def follow(
        self, container_id: str, tail: int | Literal["all"], shaper: LineShaper | None = None
    ) -> AsyncIterator[Shaped]:
        stream: Any = await self.call(
            "opening the log stream", self._open_follow_sync, container_id, tail
        )
        return follow_lines(stream, shaper or LineShaper(None, _WHOLE_LINE))

    def _open_follow_sync(self, container_id: str, tail: int | Literal["all"]) -> Any:
        # The stream read whole HTTP chunks at a time (demux_frames), not two reads per line
        # as docker-py's own follow does: a server printing as fast as it can costs the
        # reading thread little, and the throttle counts what it drops in bulk.
        api: Any = self.client.api
        params = {"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 0, "tail": str(tail)}
        url = api._url("/containers/{0}/logs", container_id)
        response = api._get(url, params=params, stream=True)
        api._raise_for_status(response)
        api._disable_socket_timeout(api._get_raw_response_socket(response))
        chunks = response.raw.read_chunked(decode_content=False)
        return CancellableStream(demux_frames(chunks), response)

    def _write_stdin_sync(self, container_id: str, data: bytes) -> None:
        # Docker's attach with stdin only (a hijacked connection), not an exec: the bytes go
        # to the server's own process. The container keeps stdin open (not StdinOnce), so
        # leaving the attach does not close it.
        sock: Any = self.client.api.attach_socket(
            container_id, params={"stdin": 1, "stream": 1, "stdout": 0, "stderr": 0}
        )
        raw = getattr(sock, "_sock", sock)
        try:
            raw.sendall(data)
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)
        finally:
            with contextlib.suppress(Exception):
                sock.close()
            with contextlib.suppress(Exception):
                raw.close()
            response = getattr(sock, "_response", None)
            if response is not None:
                with contextlib.suppress(Exception):
                    response.close()

    async def write_stdin(self, container_id: str, data: bytes) -> None:
        await self.call(
            "writing to the server's console", self._write_stdin_sync, container_id, data
        )

    def _stats_sync(self, container_id: str) -> Usage:
        raw = self.client.api.stats(container_id, stream=False)
        assert isinstance(raw, dict)
        return usage_from_stats(raw)

    async def stats(self, container_id: str) -> Usage:
        return await self.call("reading stats", self._stats_sync, container_id)

    def _exec_sync(self, container_id: str, command: list[str]) -> tuple[int | None, str]:
        api = self.client.api
        exec_id = api.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id)
        code = api.exec_inspect(exec_id).get("ExitCode")
        return (None if code is None else int(code)), bytes(output).decode("utf-8", "replace")

    async def exec(
        self, container_id: str, argv: list[str], timeout: float
    ) -> tuple[int | None, str]:
        return await self.call(
            "running a command in the container",
            self._exec_sync,
            container_id,
            argv,
            timeout=timeout,
        )
