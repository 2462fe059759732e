"""Server-Sent Events read in a thread, for tests that act while a stream is open."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

__all__ = ["Follow", "following"]


@dataclass
class Follow:
    """An SSE follow read in a thread: ``(event, data)`` pairs as they come."""

    events: list[tuple[str, str]] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    response: httpx.Response | None = None

    def logs(self) -> list[str]:
        return [data for event, data in list(self.events) if event == "log"]

    def dropped(self) -> int:
        return sum(json.loads(d)["lines"] for e, d in list(self.events) if e == "dropped")


@contextmanager
def following(
    client: httpx.Client, path: str, params: dict[str, str] | None = None
) -> Iterator[Follow]:
    follow = Follow()
    stop = threading.Event()

    def read() -> None:
        try:
            with client.stream("GET", path, params=params, timeout=60) as response:
                follow.status = response.status_code
                follow.response = response
                follow.opened.set()
                if response.status_code != 200:
                    response.read()
                    return
                event, data = "", []
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif line == "" and event:
                        follow.events.append((event, "\n".join(data)))
                        event, data = "", []
        except httpx.HTTPError:
            pass
        finally:
            follow.opened.set()
            follow.ended.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert follow.opened.wait(30)
    try:
        yield follow
    finally:
        stop.set()
        if follow.response is not None:  # ends a read that waits for the next line
            stream = follow.response.extensions.get("network_stream")
            sock = None if stream is None else stream.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=10)
