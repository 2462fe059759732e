"""A real fleet for end-to-end tests: a coordinator on loopback and real ``lightd run`` agents.

Short timers everywhere (heartbeats 200 ms, node timeout 2 s) so the flows finish in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from lightd_coordinator.config import Settings
from lightd_coordinator.main import create_app
from tests.harness.servers import free_port, serve
from tests.harness.startup import stop_process, wait_healthy
from tests.harness.wait import wait_until as wait_until

LIGHTD = str(Path(sys.executable).with_name("lightd"))
STATIC = "fleet-static-token-0123456789"
JWT_SECRET = "fleet-jwt-secret-0123456789abcdef"
AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
API_TOKEN = "lightd_0123456789abcdef0123456789abcdef"
NODE_TIMEOUT = 2.0


def coordinator_settings(**auth: Any) -> Settings:
    return Settings(
        server={"auth_token": STATIC},
        registry={
            "health_check_interval": "200ms",
            "node_timeout": f"{NODE_TIMEOUT}s",
            "command_timeout": "30s",
        },
        websocket={"ping_period": "1s"},
        auth={"enabled": True, "jwt_secret": JWT_SECRET, "agent_token": AGENT_TOKEN, **auth},
        logging={"format": "text"},
    )


@contextmanager
def running_coordinator(settings: Settings | None = None) -> Iterator[str]:
    with serve(create_app(settings or coordinator_settings())) as base:
        yield base


def operator(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {STATIC}"}, timeout=60)


def agent_document(
    base: Path, coordinator: str, node_id: str, *, allow_exec: bool, token: str | None = AGENT_TOKEN
) -> dict[str, Any]:
    """config.json of one agent: its own node id, storage and port; synced to the coordinator."""
    return {
        "server": {"host": "127.0.0.1", "port": free_port()},
        "authorization": {"enabled": True, "token": API_TOKEN},
        "storage": {"base_path": str(base / node_id)},
        "node": {"id": node_id, "labels": {"role": node_id.split("-")[0]}},
        "docker": {"call_timeout": "20s", "install_timeout": "1m"},
        "logging": {"level": "info"},
        "coordinator": {
            "enabled": True,
            "url": coordinator,
            "token": token,
            "advertise_address": "127.0.0.1",
            # published ports are named by the Docker host's name, not the advertised address
            "services_address": "localhost",
            "heartbeat_interval": "200ms",
        },
        "commands": {"allow_exec": allow_exec},
        "remote": {
            "enabled": True,
            "url": f"{coordinator}/api/v1/remote/{node_id}",
            "token": AGENT_TOKEN,
            "timeout": "2s",
            "health_interval": "200ms",
            "retry_max_delay": "500ms",
            "events": "all",
        },
    }


@dataclass
class AgentProcess:
    """One ``lightd run`` child; ``stop`` sends SIGTERM (a clean shutdown), ``start`` again."""

    config: Path
    log: Path
    node_id: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    verify: Any = True  # an ssl.SSLContext for an agent serving HTTPS (mutual TLS: with a cert)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [LIGHTD, "run", "-c", str(self.config)], stdout=sink, stderr=sink
            )
        wait_healthy(
            self.process,
            self.url,
            name=f"agent {self.node_id}",
            logs=self.log.read_text,
            verify=self.verify,
        )

    def stop(self) -> None:
        if self.process is not None and not stop_process(self.process):
            raise AssertionError(f"agent {self.node_id} ignored SIGTERM")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no goodbye to the coordinator."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


COORDINATOR = [sys.executable, "-m", "lightd_coordinator"]


def coordinator_document(port: int, **sections: dict[str, Any]) -> dict[str, Any]:
    """config.yaml of a coordinator process: the fleet's secrets and short timers."""
    document: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port, "auth_token": STATIC},
        "registry": {
            "health_check_interval": "200ms",
            "node_timeout": f"{NODE_TIMEOUT}s",
            "command_timeout": "30s",
        },
        "websocket": {"ping_period": "1s"},
        "auth": {"enabled": True, "jwt_secret": JWT_SECRET, "agent_token": AGENT_TOKEN},
        "logging": {"format": "text"},
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    return document


@dataclass
class CoordinatorProcess:
    """One ``lightd-coordinator start`` child: ``stop`` is SIGTERM, ``kill`` SIGKILL."""

    config: Path
    log: Path
    port: int
    scheme: str = "http"
    verify: Any = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTD_", "VENDETTA_"))}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [*COORDINATOR, "start", "-c", str(self.config)], stdout=sink, stderr=sink, env=env
            )
        wait_healthy(self.process, self.url, name="coordinator", logs=self.logs, verify=self.verify)

    def stop(self) -> None:
        if self.process is not None and not stop_process(self.process):
            raise AssertionError("coordinator ignored SIGTERM")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_coordinator(
    tmp: Path, name: str = "coordinator", *, verify: Any = None, **sections: dict[str, Any]
) -> CoordinatorProcess:
    """Write its config.yaml and start it; ``verify`` (an SSL context) means it serves HTTPS."""
    port = free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(coordinator_document(port, **sections)), encoding="utf-8")
    coordinator = CoordinatorProcess(config=config, log=tmp / f"{name}.log", port=port)
    if verify is not None:
        coordinator.scheme = "https"
        coordinator.verify = verify
    coordinator.start()
    return coordinator


def start_agent(
    tmp: Path, coordinator: str, prefix: str, *, allow_exec: bool, token: str | None = AGENT_TOKEN
) -> AgentProcess:
    node_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    document = agent_document(tmp, coordinator, node_id, allow_exec=allow_exec, token=token)
    return run_agent(tmp, document)


def run_agent(
    tmp: Path, document: dict[str, Any], *, name: str | None = None, **options: Any
) -> AgentProcess:
    """Write ``document`` to ``<tmp>/<name>.json`` (``name``: the node id unless given) and
    start ``lightd run`` on it, logging to ``<name>.log``; ``options`` go to the process
    (``scheme``, ``verify``). The one way the tests start an agent process."""
    node_id = document["node"]["id"]
    name = name or node_id
    config = tmp / f"{name}.json"
    config.write_text(json.dumps(document), encoding="utf-8")
    agent = AgentProcess(
        config=config,
        log=tmp / f"{name}.log",
        node_id=node_id,
        port=document["server"]["port"],
        **options,
    )
    agent.start()
    return agent


@dataclass
class EventTail:
    """Reads ``/ws`` in a thread and keeps every event envelope (``{type, timestamp, data}``)."""

    base: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {STATIC}"}
        with (
            httpx.Client(base_url=self.base, timeout=httpx.Timeout(10, read=3)) as client,
            client.stream("GET", "/ws", headers=headers) as response,
        ):
            self.ready.set()
            try:
                for line in response.iter_lines():
                    if self.stopping.is_set():
                        return
                    if line.startswith("data:"):
                        with self.lock:
                            self.events.append(json.loads(line[5:].strip()))
            except httpx.HTTPError:
                return

    def of(self, type_: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["type"] == type_]


@contextmanager
def tail_events(base: str) -> Iterator[EventTail]:
    tail = EventTail(base)
    thread = threading.Thread(target=tail.run, daemon=True)
    thread.start()
    assert tail.ready.wait(10), "the event stream did not open"
    try:
        yield tail
    finally:
        tail.stopping.set()
        thread.join(timeout=10)
