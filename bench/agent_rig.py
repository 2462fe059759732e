"""A real agent to measure: ``lightd run -c`` with remote sync to the bench's recording remote.

:class:`AgentRig` starts the recorder (``python -m bench.recorder``) and the agent as separate
processes, follows the agent's ``GET /events`` (to see ``Running`` the moment the agent says
so) and Docker's own event stream for the agent's containers (Docker's ``timeNano`` is the
start of figure 2's latency), and removes every container and volume it made on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx

from bench.context import IMAGE, LABEL, Run
from bench.procs import Proc, agent_config, free_port, kill_quietly, start, venv_bin, wait_http
from lightd_shared.tokens import generate_token

__all__ = ["AgentRig", "cleanup_docker"]


class _AgentEvents:
    """The agent's ``/events`` stream, kept as (server, kind, monotonic time) in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []
        self.changed = asyncio.Event()
        self.connected = asyncio.Event()

    async def follow(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/events", timeout=None) as response:
            response.raise_for_status()
            self.connected.set()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    self.seen.append((data["server"], data["kind"], time.monotonic()))
                    self.changed.set()

    async def wait(self, server: str, kind: str, since: int, timeout: float) -> float:
        """The time of the first ``kind`` event of ``server`` at index >= ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            for who, what, when in self.seen[since:]:
                if who == server and what == kind:
                    return when
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} event for {server} within {timeout}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


class _DockerEvents:
    """Docker's event stream for one label, read in a thread: (server, action, time_ns,
    arrived_ns).

    ``arrived_ns`` is when this bare SDK listener read the event: Docker's own delivery
    (``arrived_ns - time_ns``) is the floor under figures 2a and 2b, since the agent reads the
    same stream the same way before it can do anything.
    """

    def __init__(self, client: docker.DockerClient, node_id: str) -> None:
        self.seen: list[tuple[str, str, int, int]] = []
        self._lock = threading.Lock()
        self._stream = client.events(
            decode=True,
            filters={"type": "container", "label": [f"lightd.node={node_id}"]},
        )
        self._thread = threading.Thread(target=self._read, daemon=True, name="docker-events")
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when closed
            for event in self._stream:
                arrived = time.time_ns()
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                with self._lock:
                    self.seen.append(
                        (
                            str(attrs.get("lightd.server")),
                            str(event.get("Action") or event.get("status")),
                            int(event.get("timeNano") or 0),
                            arrived,
                        )
                    )

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def find(self, server: str, action: str, since: int) -> int | None:
        """Docker's time of the first such event from index ``since`` on."""
        found = self.delivery(server, action, since)
        return None if found is None else found[0]

    def delivery(self, server: str, action: str, since: int) -> tuple[int, int] | None:
        """(Docker's time, this listener's arrival) of the first such event from ``since``."""
        with self._lock:
            for who, what, when, arrived in self.seen[since:]:
                if who == server and what == action:
                    return when, arrived
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


class AgentRig:
    """Recorder + agent processes for one run; ``async with`` ends and cleans everything."""

    def __init__(self, run: Run, name: str = "agent", extra: dict[str, Any] | None = None) -> None:
        self.run = run
        self.name = name
        self.extra = extra or {}
        self.node_id = f"bench-{run.run_id}-{name}"
        self.base = Path(tempfile.mkdtemp(prefix="lightd-bench-"))
        self.recorder_port = free_port()
        self.port = free_port()
        self.remote_token = generate_token()
        self.config_path = run.run_dir / f"{name}-config.json"
        self.token = ""
        self.agent: Proc | None = None
        self.recorder: Proc | None = None
        self.client: httpx.AsyncClient | None = None
        self.recorder_client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.recorder_port}", timeout=10
        )
        self.events = _AgentEvents()
        self.docker_events: _DockerEvents | None = None
        self._follower: asyncio.Task[None] | None = None
        self.servers: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_recorder(self) -> None:
        self.recorder = start(
            f"{self.name}-recorder",
            [sys.executable, "-m", "bench.recorder", str(self.recorder_port)],
            self.run.run_dir,
        )
        wait_http(f"http://127.0.0.1:{self.recorder_port}/health", self.recorder)

    def stop_recorder(self) -> None:
        kill_quietly(self.recorder)
        self.recorder = None

    async def __aenter__(self) -> AgentRig:
        try:
            self.start_recorder()
            self.token = agent_config(
                self.config_path,
                port=self.port,
                node_id=self.node_id,
                base_path=self.base,
                remote_url=f"http://127.0.0.1:{self.recorder_port}",
                remote_token=self.remote_token,
                extra=self.extra,
            )
            self.agent = start(
                self.name,
                [venv_bin("lightd"), "run", "-c", str(self.config_path)],
                self.run.run_dir,
            )
            await asyncio.to_thread(
                wait_http,
                f"{self.url}/health",
                self.agent,
                30.0,
                lambda body: bool(body.get("docker", {}).get("reachable")),
            )
            self.client = httpx.AsyncClient(
                base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
            )
            self.docker_events = _DockerEvents(self.run.docker, self.node_id)
            self._follower = asyncio.create_task(self.events.follow(self.client))
            await asyncio.wait_for(self.events.connected.wait(), 10)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(BaseException):
                await self._follower
        if self.docker_events is not None:
            self.docker_events.close()
        if self.client is not None and self.agent is not None and self.agent.alive():
            for server in self.servers:  # through the agent first: it owns them
                with contextlib.suppress(Exception):
                    await self.client.delete(f"/containers/{server}", params={"volumes": "true"})
        if self.client is not None:
            await self.client.aclose()
        await self.recorder_client.aclose()
        kill_quietly(self.agent)
        kill_quietly(self.recorder)
        await asyncio.to_thread(cleanup_docker, self.run.docker, self.run.run_id)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- helpers for the figures ------------------------------------------------------------

    def spec(self, server: str) -> dict[str, Any]:
        return {
            "id": server,
            "image": IMAGE,
            "startup_command": ["sleep", "86400"],
            "labels": {LABEL: self.run.run_id},
            "restart_policy": {"enabled": False},
        }

    async def records(self, since: int = 0) -> list[dict[str, Any]]:
        response = await self.recorder_client.get("/__records", params={"since": since})
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    async def started_ns(self) -> int:
        """When the current recorder process began serving (``time.time_ns()``)."""
        response = await self.recorder_client.get("/__records", params={"since": 10**9})
        response.raise_for_status()
        return int(response.json()["started_ns"])

    async def wait_record(
        self, since: int, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[dict[str, Any], int]:
        """The first recorded update from index ``since`` that matches; and the new index."""
        deadline = time.monotonic() + timeout
        seen = since
        while time.monotonic() < deadline:
            records = await self.records(seen)
            for offset, record in enumerate(records):
                if match(record):
                    return record, seen + offset + 1
            seen += len(records)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the remote received no matching update within {timeout}s")

    async def remote_status(self) -> dict[str, Any]:
        assert self.client is not None
        response = await self.client.get("/remote/status")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def cleanup_docker(client: docker.DockerClient, run_id: str) -> None:
    """Remove every container, then every volume, labelled with this run's id."""
    selector: dict[str, str | list[str] | bool] = {"label": f"{LABEL}={run_id}"}
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    for volume in client.volumes.list(filters=selector):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)
