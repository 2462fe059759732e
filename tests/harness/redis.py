"""A real Redis server for tests: Debian's ``redis-server`` on a free loopback port.

Started without persistence (``--save '' --appendonly no``), so a :meth:`RedisServer.restart`
is a Redis that lost everything, the harshest restart a replica must survive. A machine without
``redis-server`` fails the test that needs it (``.ci/run`` installs it), never skips it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.servers import free_port
from tests.harness.wait import wait_until

__all__ = ["RedisServer", "redis_server"]


class RedisServer:
    def __init__(self, directory: Path, *options: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed; install Debian's redis-server package "
                "(.ci/run does) to run the redis registry tests"
            )
        self.binary = binary
        self.directory = directory
        self.options = list(options)
        """More ``redis-server`` options (``--requirepass``, ...)."""
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        process = self.process

        def answering() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self._log()}")
            return self.ping()

        try:
            wait_until(answering, 10, what=f"redis-server answering on port {self.port}")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}: {self._log()}") from None

    def _log(self) -> str:
        return (self.directory / "redis.log").read_text(errors="replace")[-2000:]

    def ping(self) -> bool:
        """Whether it answers (a PONG, or the refusal of a server that wants a password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server(directory: Path, *options: str) -> Iterator[RedisServer]:
    server = RedisServer(directory, *options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
