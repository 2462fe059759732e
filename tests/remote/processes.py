"""Helpers to drive a child process line by line, with timeouts (no test hangs forever)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
from collections.abc import Callable
from typing import IO

from tests.harness.wait import wait_until


def read_line(stream: IO[str], timeout: float = 15.0) -> str:
    """The next line the child prints; fail after ``timeout`` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"child printed nothing within {timeout}s")
    finally:
        selector.close()
    line = stream.readline()
    if not line:
        raise AssertionError("child closed its output (did it crash?)")
    return line.strip()


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll a callable until it returns true (:func:`tests.harness.wait.wait_until`)."""
    wait_until(check, timeout)


def sigkill(process: subprocess.Popen[str]) -> None:
    """``kill -9``: no cleanup, no flush, no atexit."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    close_streams(process)
    assert process.returncode == -signal.SIGKILL


def close_streams(process: subprocess.Popen[str]) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
