"""Coordinator replicas as real processes sharing one real Redis (``registry.provider: redis``).

Each replica is ``python -m lightd_coordinator start`` on its own free loopback port, so a test
can kill one for real (``SIGKILL``: no shutdown, no last words) while the others carry on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.harness.servers import free_port
from tests.harness.wait import wait_until

__all__ = ["Replica", "replica", "replicas"]


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Gone at once, as a crashed or powered-off replica is."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIGHTD_COORD_") and not k.startswith("VENDETTA_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def replica(
    directory: Path, redis_url: str, name: str, **sections: dict[str, Any]
) -> Iterator[Replica]:
    """One replica, started and healthy; stopped (or found killed) on exit."""
    port = free_port()
    config: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port},
        "registry": {
            "provider": "redis",
            "redis_url": redis_url,
            "health_check_interval": "200ms",
            "node_timeout": "30s",
        },
        "logging": {"format": "text", "level": "info"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightd_coordinator", "start", "-c", str(path)],
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    running = Replica(name=name, port=port, process=process, log=log)
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"replica {name} exited: {running.logs()[-3000:]}")
            try:
                return httpx.get(f"{running.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, interval=0.05, what=f"replica {name} started")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def replicas(
    directory: Path, redis_url: str, count: int, **sections: dict[str, Any]
) -> Iterator[list[Replica]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(replica(directory, redis_url, f"r{i}", **sections))
            for i in range(count)
        ]
