"""Real HTTP servers on loopback for tests: uvicorn in a thread, on a free port.

``httpx.ASGITransport`` buffers whole responses and skips lifespan, so endless SSE streams and
anything that depends on startup/shutdown need a real server. This follows httpx's own
``tests/conftest.py``: subclass ``uvicorn.Server``, wait for ``started``, set ``should_exit``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.harness.wait import wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer(uvicorn.Server):
    """A uvicorn server that does not install signal handlers (it runs in a thread)."""

    def install_signal_handlers(self) -> None:
        pass


@contextmanager
def serve(app: Any, *, port: int | None = None, **config: Any) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 in a thread; yield its base URL; stop it on exit."""
    port = port or free_port()
    # The plain asyncio loop in these in-process threads: the programs themselves run on uvloop
    # when started as processes (the CLI and fleet tests do), and a test thread should not
    # depend on a C extension loop sharing the process with pytest and anyio.
    settings = {"log_level": "warning", "lifespan": "on", "loop": "asyncio", **config}
    server = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, **settings))
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError(f"test server on port {port} did not start (its thread ended)")
        return bool(server.started)

    wait_until(started, 15, interval=0.01, what=f"test server on port {port} started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
