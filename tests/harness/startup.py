"""One way for tests to wait for a program they started (``wait_healthy``) and to stop it
(``stop_process``).

Every test that runs ``lightd run`` or ``lightd-coordinator start`` as a child process waits
the same way: ``GET {url}/health`` until it answers 200, failing at once (with the program's
log) when the process exits, and after ``timeout`` seconds when it never comes up.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import httpx

from tests.harness.wait import wait_until

__all__ = ["stop_process", "wait_healthy"]


class _Exited(AssertionError):
    pass


def wait_healthy(
    process: subprocess.Popen[Any],
    url: str,
    *,
    name: str,
    logs: Callable[[], str],
    timeout: float = 30.0,
    verify: Any = True,
) -> None:
    """Return once ``{url}/health`` answers 200. ``logs()`` is shown when it fails; it is
    called only once the process exited or the time is up."""

    def up() -> bool:
        if process.poll() is not None:
            raise _Exited(f"{name} exited with {process.returncode}:\n{logs()}")
        try:
            return httpx.get(f"{url}/health", timeout=2, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout, interval=0.05, what=f"{name} answering {url}/health")
    except _Exited:
        raise
    except AssertionError as exc:
        raise AssertionError(f"{name} did not come up ({exc}):\n{logs()}") from None


def stop_process(process: subprocess.Popen[Any], *, timeout: float = 30.0) -> bool:
    """SIGTERM, then wait ``timeout`` seconds; SIGKILL what is still running. Whether it ended
    on the SIGTERM (a program that ignored it is for the caller to fail on, or not)."""
    if process.poll() is not None:
        return True
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return False
    return True
