"""Reading Docker's streams in threads: the event stream and a followed log.

docker-py's streams are blocking iterators: each is read in a thread and handed to the event
loop; ``close()`` on the stream from another thread ends the read, as docker-py's
``CancellableStream`` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from lightd_agent.backend.lines import LineShaper, Shaped

__all__ = ["EventReader", "demux_frames", "follow_lines"]

log = logging.getLogger(__name__)


def demux_frames(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The payloads of Docker's multiplexed stream (an 8-byte header per frame: stream,
    three zero bytes, the size big-endian), joined per chunk read: one item per read, not per
    frame. stdout and stderr come in the order the engine sent them."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        payloads = []
        position = 0
        while len(buffer) - position >= 8:
            size = int.from_bytes(buffer[position + 4 : position + 8], "big")
            end = position + 8 + size
            if end > len(buffer):
                break
            payloads.append(bytes(buffer[position + 8 : end]))
            position = end
        del buffer[:position]
        if payloads:
            yield b"".join(payloads)


async def follow_lines(stream: Any, shaper: LineShaper) -> AsyncIterator[Shaped]:
    """Lines of a blocking byte stream (a followed container log), read in a thread.

    ``shaper`` splits, bounds and throttles them in the reading thread, so what it drops never
    reaches the event loop; only the items it lets through are handed over, one chunk's worth
    at a time.
    """
    queue: asyncio.Queue[list[Shaped] | None] = asyncio.Queue(maxsize=1000)
    loop = asyncio.get_running_loop()

    def put(item: list[Shaped] | None) -> None:
        # bounded wait: a consumer that is gone (or a loop that stopped) ends the pump
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result(timeout=30)

    def pump() -> None:
        try:
            for chunk in stream:
                items = shaper.feed(bytes(chunk))
                if items:
                    put(items)
        except Exception:  # closed by the consumer, or the engine went away
            pass
        finally:
            with contextlib.suppress(Exception):
                items = shaper.end()
                if items:
                    put(items)
                put(None)

    thread = loop.run_in_executor(None, pump)

    async def lines() -> AsyncIterator[Shaped]:
        try:
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                for item in batch:
                    yield item
        finally:
            with contextlib.suppress(Exception):
                stream.close()
            while not queue.empty():  # let the pump finish its puts
                queue.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(thread), timeout=1)

    async for line in lines():
        yield line


class EventReader:
    """Reads Docker's event stream for this node's containers in a thread.

    Events go to ``deliver`` (called in the reader thread; it must hand them to the loop).
    When the stream breaks (engine lost) ``on_lost`` is called once; ``close()`` ends the
    stream without calling it.
    """

    def __init__(
        self,
        backend: Any,
        deliver: Callable[[dict[str, Any]], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.deliver = deliver
        self.on_lost = on_lost
        self._stream: Any = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the stream (in the caller's thread, so a failure is seen) and start reading."""
        client = self.backend.client
        self._stream = client.events(
            decode=True,
            filters={
                "type": ["container"],
                "label": self.backend.owned_filter(),
                "event": ["die", "oom", "start"],
            },
        )
        self._thread = threading.Thread(
            target=self._run, name=f"docker-events:{self.backend.node_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        reason = "Docker's event stream ended"
        try:
            for event in self._stream:
                if self._closing.is_set():
                    return
                if isinstance(event, dict):
                    self.deliver(event)
        except Exception as exc:
            reason = f"Docker's event stream broke: {type(exc).__name__}: {exc}"
        if not self._closing.is_set():
            self.on_lost(reason)

    def close_sync(self) -> None:
        self._closing.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # pragma: no cover - closing a broken socket
                log.debug("closing the Docker event stream failed", exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)
