"""Profiles for missed targets: ``py-spy record`` on a running server process, summarised.

``--profile`` runs py-spy (sampling from outside the process, ``--nonblocking``) on the process
under test while a figure is measured, and writes the raw collapsed stacks and a summary (where
the samples' own time is, and which project functions hold the most time) next to the results.
Profiled runs are slower: the committed table comes from a run without ``--profile``.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

from bench.procs import venv_bin

__all__ = ["Profiler", "summarise"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def _short(frame: str, *, line: bool = False) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if line and match.group("line"):
        path += f":{match.group('line')}"
    return f"{match.group('func')} ({path})"


def _idle_worker(frames: list[str]) -> bool:
    """A thread-pool worker waiting for work: not time any request spends (``--idle`` runs)."""
    joined = ";".join(frames)
    pool = "_worker (" in joined or "WorkerThread.run (" in joined
    return pool and frames[-1].startswith(
        ("Condition.wait", "SimpleQueue.get", "Queue.get", "wait (threading")
    )


def summarise(raw: Path, top: int = 12) -> str:
    """Where the samples are: by their own function, and by the deepest lightd frame.

    The second view charges each sample to the innermost ``lightd_*`` function on its stack
    (its callees in libraries included), which says which of our lines the time is spent
    under; samples with no lightd frame are charged to their own function.
    """
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or _idle_worker(frames):
            continue
        total += count
        own[_short(frames[-1])] += count
        project = [f for f in frames if "lightd_" in f and "cli.py" not in f]
        where = (
            _short(project[-1], line=True) if project else "(no lightd frame) " + _short(frames[-1])
        )
        ours[where] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples", "self time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines.append("by the deepest lightd frame on the stack (callees included):")
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in ours.most_common(top)]
    return "\n".join(lines)


class Profiler:
    """``with Profiler(pid, path, enabled)``: py-spy records while the block runs."""

    def __init__(self, pid: int, raw: Path, enabled: bool, *, idle: bool = False) -> None:
        self.pid = pid
        self.idle = idle  # also sample waiting threads: wall-clock, for latency figures
        self.raw = raw
        self.enabled = enabled
        self.summary = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.enabled:
            self._proc = subprocess.Popen(
                [
                    venv_bin("py-spy"),
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(self.raw),
                    *(["--idle"] if self.idle else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self.raw.exists():
            self.summary = summarise(self.raw)
            self.raw.with_suffix(".summary.txt").write_text(self.summary + "\n")
