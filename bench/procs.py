"""Real processes for the benchmarks: ``lightd run -c``, ``lightd-coordinator start -c``, and
the bench's own helpers (the recording remote, the bare ceiling server, the load clients).

Every process is started with its output in a log file of the run directory, is waited for
with a bounded poll, and is ended by :meth:`Proc.stop` (SIGTERM, then SIGKILL after a grace
period) in a ``finally``; nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from lightd_shared.tokens import generate_token

_PR_SET_PDEATHSIG = 1

__all__ = [
    "Proc",
    "agent_config",
    "coordinator_config",
    "cpu_seconds",
    "free_port",
    "rss_mib",
    "start",
    "venv_bin",
    "wait_http",
]


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # resolved in the parent: the child only makes one C call before exec


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies, even by SIGKILL (Linux prctl)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def venv_bin(name: str) -> str:
    """A console script of this environment (``lightd``, ``lightd-coordinator``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing; run `uv sync --all-packages` first")
    return str(path)


class Proc:
    """A child process with its log file; :meth:`stop` ends it for sure."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, argv: list[str], run_dir: Path, env: dict[str, str] | None = None) -> Proc:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return Proc(name, argv, run_dir / f"{name}.log", full_env)


def wait_http(url: str, proc: Proc, timeout: float = 30.0, ok: Any = None) -> dict[str, Any]:
    """Poll ``url`` until it answers 2xx (and ``ok(body)`` holds); fail with the log tail."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        try:
            response = httpx.get(url, timeout=2)
            if response.is_success:
                body: dict[str, Any] = response.json() if response.content else {}
                if ok is None or ok(body):
                    return body
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout}s ({last}):\n{proc.tail()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (all its threads)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_mib(pid: int) -> float:
    """Resident set size of one process, MiB."""
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def agent_config(
    path: Path,
    *,
    port: int,
    node_id: str,
    base_path: Path,
    remote_url: str,
    remote_token: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write an agent ``config.json`` (loopback only, remote sync with every event); the token."""
    token = generate_token()
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "authorization": {"enabled": True, "token": token},
        "storage": {"base_path": str(base_path)},
        "node": {"id": node_id, "name": node_id},
        "remote": {
            "enabled": True,
            "url": remote_url,
            "token": remote_token,
            "timeout": "2s",
            "health_interval": "1s",
            "events": "all",
            "retry_max_delay": "1s",
        },
        "logging": {"level": "info", "json": True},
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict):
            document.setdefault(section, {}).update(values)
        else:
            document[section] = values
    path.write_text(json.dumps(document, indent=2))
    return token


def coordinator_config(path: Path, *, port: int, extra: dict[str, Any] | None = None) -> None:
    """Write a coordinator ``config.yaml``: the seed's defaults, on loopback, logs to a file."""
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "registry": {"provider": "memory"},
        "logging": {"level": "info", "format": "json", "output": "stdout"},
    }
    for section, values in (extra or {}).items():
        document.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(document))


def kill_quietly(proc: Proc | None) -> None:
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stop()
