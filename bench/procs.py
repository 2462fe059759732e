"""Real processes for the benchmarks: ``lightd run -c``, ``lightd-coordinator start -c``, and
the bench's own helpers (the recording remote, the bare ceiling server, the load clients).

Every process is started with its output in a log file of the run directory, is waited for
with a bounded poll, and is ended by :meth:`Proc.stop` (SIGTERM, then SIGKILL after a grace
period) in a ``finally``; nothing outlives the run. :func:`rss_mib` is a process's resident
size, :func:`rss_parts` where it is (from ``/proc/<pid>/status`` and ``/proc/<pid>/smaps``).
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
    "RSS_GROUPS",
    "Proc",
    "agent_config",
    "coordinator_config",
    "cpu_seconds",
    "free_port",
    "rss_mib",
    "rss_parts",
    "rss_summary",
    "start",
    "start_coordinator",
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


_STATUS_FIELDS = {
    "VmRSS": "vmrss",
    "RssAnon": "rss_anon",
    "RssFile": "rss_file",
    "RssShmem": "rss_shmem",
}
_ARENA_RESERVE = 64 * 2**20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena's reservation
_TOP_FILES = 6


def _mapping_kind(name: str) -> str:
    """The group of a file mapping: the interpreter, extension modules and C libraries, the
    rest (SQLite's ``-shm`` files, locale data, ...)."""
    base = name.rsplit("/", 1)[-1]
    if base.startswith(("libpython", "python3")):
        return "file_python"
    if ".so" in base:
        return "file_so"
    return "file_other"


RSS_GROUPS = (
    "heap",
    "main_stack",
    "thread_stacks",
    "malloc_arenas",
    "anon_other",
    "file_python",
    "file_so",
    "file_other",
)
"""The parts :func:`rss_parts` splits the mappings into; together they are ``smaps_total``."""


def rss_parts(pid: int) -> dict[str, float]:
    """Where one process's resident memory is, MiB (``threads`` is a count).

    From ``/proc/<pid>/status``: ``vmrss``, ``rss_anon``, ``rss_file``, ``rss_shmem``,
    ``threads``. From ``/proc/<pid>/smaps``, each mapping's ``Rss`` in one group: ``heap``
    (the main arena, ``[heap]``), ``main_stack``, ``thread_stacks`` (an anonymous writable
    mapping right above its ``---p`` guard page: glibc's pthread stacks), ``malloc_arenas``
    (glibc's thread arenas: an anonymous writable start and its ``---p`` rest, 64 MiB
    together), ``anon_other`` (every other anonymous mapping: Python's object arenas, large
    ``malloc`` blocks, ...), ``file_python`` (the interpreter and ``libpython``), ``file_so``
    (extension modules and C libraries), ``file_other``; and ``file:<name>`` for the
    biggest file mappings by name, summed over their segments. The groups add up to
    ``smaps_total`` (the sum of every mapping's ``Rss``), which can differ from ``vmrss`` by
    a page or two read a moment apart.
    """
    parts: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in _STATUS_FIELDS:
            parts[_STATUS_FIELDS[key]] = int(value.split()[0]) / 1024
        elif key == "Threads":
            parts["threads"] = float(value.strip())
    # Each mapping: (start, end, perms, name, rss KiB), in address order.
    maps: list[tuple[int, int, str, str, int]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            low, _, high = head[0].partition("-")
            label = head[5].strip() if len(head) > 5 else ""
            maps.append((int(low, 16), int(high, 16), head[1], label, 0))
        elif head and head[0] == "Rss:" and maps:
            maps[-1] = (*maps[-1][:4], int(head[1]))
    groups = dict.fromkeys(RSS_GROUPS, 0.0)
    files: dict[str, float] = {}
    stacks = arenas = 0
    for i, (start, end, perms, name, rss) in enumerate(maps):
        mib = rss / 1024
        if name == "[heap]":
            groups["heap"] += mib
        elif name == "[stack]":
            groups["main_stack"] += mib
        elif name.startswith("["):  # [vdso], [vvar], [vsyscall]
            groups["file_other"] += mib
        elif name:
            groups[_mapping_kind(name)] += mib
            files[name.rsplit("/", 1)[-1]] = files.get(name.rsplit("/", 1)[-1], 0.0) + mib
        else:
            below = maps[i - 1] if i > 0 else None
            above = maps[i + 1] if i + 1 < len(maps) else None
            if (
                perms.startswith("rw")
                and below is not None
                and below[1] == start
                and below[2].startswith("---")
                and not below[3]
                and below[1] - below[0] <= 64 * 1024
            ):
                groups["thread_stacks"] += mib
                stacks += 1
            elif (
                perms.startswith("rw")
                and start % _ARENA_RESERVE == 0
                and above is not None
                and above[0] == end
                and above[2].startswith("---")
                and not above[3]
                and above[1] - start == _ARENA_RESERVE
            ):
                groups["malloc_arenas"] += mib
                arenas += 1
            else:
                groups["anon_other"] += mib
    parts.update(groups)
    parts["smaps_total"] = sum(groups.values())
    parts["thread_stack_count"] = float(stacks)
    parts["malloc_arena_count"] = float(arenas)
    for name, mib in sorted(files.items(), key=lambda item: -item[1])[:_TOP_FILES]:
        parts[f"file:{name}"] = mib
    return parts


def rss_summary(parts: dict[str, float]) -> str:
    """One line of :func:`rss_parts` for a figure's detail."""
    return (
        f"RSS {parts.get('vmrss', 0):.1f} MiB = anon {parts.get('rss_anon', 0):.1f} + file "
        f"{parts.get('rss_file', 0):.1f} + shmem {parts.get('rss_shmem', 0):.1f}; heap "
        f"{parts.get('heap', 0):.1f}, other anon {parts.get('anon_other', 0):.1f}, "
        f"{parts.get('malloc_arena_count', 0):.0f} thread arenas "
        f"{parts.get('malloc_arenas', 0):.1f}, {parts.get('thread_stack_count', 0):.0f} thread "
        f"stacks {parts.get('thread_stacks', 0):.1f} ({parts.get('threads', 0):.0f} threads), "
        f"libpython {parts.get('file_python', 0):.1f}, .so {parts.get('file_so', 0):.1f}, "
        f"other files {parts.get('file_other', 0):.1f}"
    )


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


def start_coordinator(
    run_dir: Path, name: str, extra: dict[str, Any] | None = None
) -> tuple[Proc, str]:
    """A ``lightd-coordinator start -c`` on a free loopback port, healthy; its URL."""
    port = free_port()
    config = run_dir / f"{name}.yaml"
    coordinator_config(config, port=port, extra=extra)
    proc = start(name, [venv_bin("lightd-coordinator"), "start", "-c", str(config)], run_dir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc)
    return proc, url


def kill_quietly(proc: Proc | None) -> None:
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stop()
