"""Cutting a followed byte stream into lines, bounded and throttled, before the event loop.

A backend's follow reads the engine's stream in a thread; :class:`LineShaper` runs there, on
every chunk, so the work a noisy server causes past the throttle is a count, never a line
handed to the event loop:

- lines are split on ``\\n`` only: a blank line stays a blank line, a line the engine wrote
  in several pieces (Docker splits lines over 16 KiB) is one line again;
- a line longer than ``max_line`` bytes keeps its first ``max_line`` bytes, followed by
  ``[lightd: N more bytes cut]``; the rest is counted, not kept;
- :class:`LineBudget` is one server's allowance (``lines`` per ``period``, a fixed window like
  the panel daemons' 2,000 lines per 100 ms), shared by every follow of that server; a line
  over it is dropped, and the next line that passes (or the end) is preceded by
  :class:`Dropped` ``(N)``;
- the first ``free`` lines (the backlog asked for on connect) pass without the budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Dropped", "LineBudget", "LineShaper", "Shaped", "cut_marker"]


@dataclass(frozen=True, slots=True)
class Dropped:
    """``lines`` lines of output were dropped here by the throttle."""

    lines: int


Shaped = str | Dropped
"""One item of a shaped follow: a line (without its newline) or a drop marker."""


def cut_marker(extra: int) -> str:
    return f" [lightd: {extra} more bytes cut]"


class LineBudget:
    """``lines`` lines per ``period`` seconds (a fixed window), thread-safe."""

    def __init__(
        self, lines: int, period: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lines = lines
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._window = clock()
        self._used = 0

    def exhausted(self) -> bool:
        """Whether the current window is used up (a new one may open at any time)."""
        with self._lock:
            return self._clock() - self._window < self.period and self._used >= self.lines

    def take(self) -> bool:
        """Whether one more line fits in the current window (and count it if so)."""
        with self._lock:
            now = self._clock()
            if now - self._window >= self.period:
                self._window = now
                self._used = 0
            if self._used >= self.lines:
                return False
            self._used += 1
            return True


class LineShaper:
    """One follow's lines: split, bounded, throttled by ``budget`` (``None``: no throttle)."""

    def __init__(self, budget: LineBudget | None, max_line: int, free: int = 0) -> None:
        self.budget = budget
        self.max_line = max_line
        self.free = free
        self.dropped_total = 0
        self._buffer = bytearray()
        self._cut = 0  # bytes of the current line past max_line, counted and not kept
        self._dropped = 0

    def feed(self, chunk: bytes) -> list[Shaped]:
        """The items a chunk of the stream completes (most chunks complete one line)."""
        if self.free <= 0 and self.budget is not None and self.budget.exhausted():
            # over the budget: count the lines this chunk ends, keep only its last piece
            ended = chunk.count(b"\n")
            if ended:
                self._buffer.clear()
                self._cut = 0
                self._dropped += ended
                self.dropped_total += ended
                chunk = chunk[chunk.rfind(b"\n") + 1 :]
            self._take(chunk)
            return []
        out: list[Shaped] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            self._take(piece)
            if end < 0:
                return out
            self._line(out)
            start = end + 1

    def end(self) -> list[Shaped]:
        """What is left when the stream ends: a last line without newline, a drop count."""
        out: list[Shaped] = []
        if self._buffer or self._cut:
            self._line(out)
        if self._dropped:
            out.append(Dropped(self._dropped))
            self._dropped = 0
        return out

    def _take(self, piece: bytes) -> None:
        room = self.max_line - len(self._buffer)
        if len(piece) <= room:
            self._buffer += piece
        else:
            self._buffer += piece[: max(room, 0)]
            self._cut += len(piece) - max(room, 0)

    def _line(self, out: list[Shaped]) -> None:
        raw, cut = bytes(self._buffer), self._cut
        self._buffer.clear()
        self._cut = 0
        if self.free > 0:
            self.free -= 1
        elif self.budget is not None and not self.budget.take():
            self._dropped += 1
            self.dropped_total += 1
            return
        if self._dropped:
            out.append(Dropped(self._dropped))
            self._dropped = 0
        text = raw.decode("utf-8", "replace")
        out.append(text + cut_marker(cut) if cut else text)
