"""The install logs: each server's last install and last reinstall output, kept on disk.

``<storage.base_path>/state/install-logs/<server>.install.log`` and ``….reinstall.log``: the
lines of the install script as it prints them, appended (and flushed) line by line, so what
an install printed survives the agent's restart, even a kill in the middle. Each file keeps at
most ``console.install_log_size`` bytes of the end of the output: past twice that, it is
rewritten with its last ``size`` bytes (from a line start), and a reader sees
``[lightd: earlier output cut; the last N bytes are kept]`` first.

A running install is also *live*: a follow (:meth:`InstallLogs.subscribe`) reads what the file
holds and then every new line until the install ends, with nothing lost or doubled between the
two (both happen on the event loop, without an ``await`` between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from lightd_agent.backend.lines import Dropped, Shaped
from lightd_shared.console import InstallLogKind

__all__ = ["InstallLog", "InstallLogs", "cut_notice"]

log = logging.getLogger(__name__)

_KINDS: tuple[InstallLogKind, ...] = ("install", "reinstall")
_SUBSCRIBER_BACKLOG = 10_000
"""Lines one follow may fall behind a running install before lines are dropped for it."""


def cut_notice(kept: int) -> str:
    return f"[lightd: earlier output cut; the last {kept} bytes are kept]"


class _Subscriber:
    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self.dropped = 0
        self.ended = False
        self.wake = asyncio.Event()

    def push(self, line: str) -> None:
        if len(self.lines) >= _SUBSCRIBER_BACKLOG:
            self.dropped += 1
        else:
            self.lines.append(line)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()


class InstallLog:
    """One running install's log: append lines, tell the followers, close at the end."""

    def __init__(self, owner: InstallLogs, server: str, kind: InstallLogKind, path: Path) -> None:
        self.owner = owner
        self.server = server
        self.kind = kind
        self.path = path
        self.size = 0
        self._file: IO[bytes] | None = None
        self._subscribers: set[_Subscriber] = set()
        self._broken = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._file = path.open("wb")
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if not self._broken:
            log.warning(
                "server %s: the %s log at %s cannot be written (%s); the install goes on, its "
                "output is not kept",
                self.server,
                self.kind,
                self.path,
                exc,
            )
        self._broken = True
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def write(self, line: str) -> None:
        """One line of the install's output (called on the event loop)."""
        for subscriber in self._subscribers:
            subscriber.push(line)
        if self._file is None:
            return
        data = (line + "\n").encode("utf-8", "replace")
        try:
            self._file.write(data)
            self._file.flush()
            self.size += len(data)
            if self.size > 2 * self.owner.max_bytes:
                self._compact()
        except OSError as exc:
            self._fail(exc)

    def _compact(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        kept = self.owner.tail_bytes(self.path.read_bytes())
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(kept)
        os.replace(temporary, self.path)
        self.size = len(kept)
        self._file = self.path.open("ab")

    def subscribe(self) -> _Subscriber:
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """The install ended: sync the file, end every follow."""
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._file = None
        for subscriber in self._subscribers:
            subscriber.end()
        self._subscribers.clear()
        self.owner._ended(self)


class InstallLogs:
    """Every server's kept install logs, and the ones being written right now."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._live: dict[str, InstallLog] = {}

    def path(self, server: str, kind: InstallLogKind) -> Path:
        return self.directory / f"{server}.{kind}.log"

    def begin(self, server: str, kind: InstallLogKind) -> InstallLog:
        """A new install of ``server``: its ``kind`` log starts empty and is written live."""
        running = InstallLog(self, server, kind, self.path(server, kind))
        self._live[server] = running
        return running

    def _ended(self, running: InstallLog) -> None:
        if self._live.get(running.server) is running:
            del self._live[running.server]

    def live(self, server: str) -> InstallLog | None:
        return self._live.get(server)

    def latest(self, server: str) -> InstallLogKind | None:
        """The kind of the server's most recent install log (running, or newest on disk)."""
        running = self._live.get(server)
        if running is not None:
            return running.kind
        best: tuple[int, InstallLogKind] | None = None
        for kind in _KINDS:
            try:
                stamp = self.path(server, kind).stat().st_mtime_ns
            except OSError:
                continue
            if best is None or stamp >= best[0]:
                best = (stamp, kind)
        return None if best is None else best[1]

    def tail_bytes(self, data: bytes) -> bytes:
        """At most ``max_bytes`` of the end of ``data``, from a line start."""
        if len(data) <= self.max_bytes:
            return data
        kept = data[-self.max_bytes :]
        newline = kept.find(b"\n")
        return kept[newline + 1 :] if 0 <= newline < len(kept) - 1 else kept

    def read(self, server: str, kind: InstallLogKind) -> str | None:
        """The kept text of that log (``None``: there is none), the cut noted first."""
        try:
            data = self.path(server, kind).read_bytes()
        except FileNotFoundError:
            return None
        kept = self.tail_bytes(data)
        text = kept.decode("utf-8", "replace")
        return f"{cut_notice(len(kept))}\n{text}" if len(kept) < len(data) else text

    async def follow(self, server: str, kind: InstallLogKind) -> AsyncIterator[Shaped] | None:
        """The kept lines, then (while this install runs) each new line until it ends.

        ``None`` when there is no such log, running or kept.
        """
        running = self._live.get(server)
        if running is not None and running.kind != kind:
            running = None
        # read and subscribe without an await between: no line lost or doubled
        text = self.read(server, kind)
        if text is None and running is None:
            return None
        subscriber = running.subscribe() if running is not None else None

        async def lines() -> AsyncIterator[Shaped]:
            try:
                kept = (text or "").split("\n")
                if kept[-1] == "":
                    kept.pop()
                for line in kept:
                    yield line
                if subscriber is None:
                    return
                while True:
                    while subscriber.lines:
                        yield subscriber.lines.popleft()
                    if subscriber.dropped:
                        yield Dropped(subscriber.dropped)
                        subscriber.dropped = 0
                    if subscriber.ended:
                        return
                    subscriber.wake.clear()
                    await subscriber.wake.wait()
            finally:
                if subscriber is not None and running is not None:
                    running.unsubscribe(subscriber)

        return lines()

    def remove(self, server: str) -> None:
        """The server was deleted: its install logs go with it."""
        for kind in _KINDS:
            with contextlib.suppress(OSError):
                self.path(server, kind).unlink()
