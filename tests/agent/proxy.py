"""A Unix-socket proxy in front of the real Docker socket, to take the engine away from one agent.

The engine is shared with other tests running at the same time, so these tests never stop
dockerd. Instead the agent under test talks to Docker through this proxy: ``close()`` refuses
new connections and cuts the open ones (the agent sees exactly what a stopped engine looks
like: connection refused, event stream broken), ``open()`` makes it reachable again, and
``stall()`` accepts connections but never answers (a hung engine).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

DOCKER_SOCKET = "/var/run/docker.sock"


class DockerProxy:
    def __init__(self, path: Path, target: str = DOCKER_SOCKET) -> None:
        self.path = path
        self.target = target
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stalled = False

    def open(self) -> None:
        """Listen (again) and forward every connection to the real socket."""
        self._stalled = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stall(self) -> None:
        """New requests are accepted but never answered (existing connections too)."""
        self._stalled = True

    def close(self) -> None:
        """Stop listening and cut every open connection: the engine is gone."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            if self._stalled:
                continue  # hold it open, never answer
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                upstream.close()
                client.close()
                continue
            with self._lock:
                self._sockets.add(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                if self._stalled:
                    threading.Event().wait(0.05)
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # the first pump of a pair to finish closes only its source; the other its own
            with self._lock:
                self._sockets.discard(source)
            with contextlib.suppress(OSError):
                source.close()
