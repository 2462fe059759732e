"""The client process of figure 4: many ``/ws`` subscribers and one publisher, in one process.

``python -m bench.fanout_client SPEC.json`` opens ``subscribers`` Server-Sent Events
connections to the coordinator (raw asyncio streams, so that 1,000 connections cost the client
little), waits until each has its ``initial_state``, then publishes ``publishes`` events one at
a time through ``POST /api/v1/nodes/{node}/events`` and times, for each, the moment the publish
request is written to the moment the *last* subscriber has the event (and every subscriber's
own delay). Bounded: each event is waited for at most ``timeout`` seconds. Prints one JSON line.

The spec: ``{"port", "node", "subscribers", "publishes", "timeout", "gap"}``, and optionally
``publish_port``: publish through another coordinator (a replica on the same Redis) than the
one the subscribers hold open (figure 12).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

__all__ = ["run"]

MARK = re.compile(rb"BENCHMARK(\d+)E")


class _Subscriber:
    def __init__(self, port: int, arrivals: dict[int, list[float]]) -> None:
        self.port = port
        self.arrivals = arrivals
        self.ready = asyncio.Event()
        self.seen: set[int] = set()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                f"GET /ws?types=server_update HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            tail = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.monotonic()
                window = tail + chunk
                if not self.ready.is_set() and b"initial_state" in window:
                    self.ready.set()
                for match in MARK.finditer(window):
                    k = int(match.group(1))
                    if k not in self.seen:
                        self.seen.add(k)
                        self.arrivals.setdefault(k, []).append(now)
                tail = window[-64:]
        finally:
            writer.close()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    port = spec["port"]
    arrivals: dict[int, list[float]] = {}
    subscribers = [_Subscriber(port, arrivals) for _ in range(spec["subscribers"])]
    for index, sub in enumerate(subscribers):
        sub.task = asyncio.create_task(sub.run())
        if index % 50 == 49:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    connected_by = time.monotonic() + spec["timeout"] * 6
    for sub in subscribers:
        await asyncio.wait_for(sub.ready.wait(), max(0.1, connected_by - time.monotonic()))
    cpu0 = time.process_time()
    publish_port = spec.get("publish_port", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", publish_port)
    last: list[float] = []
    each: list[float] = []
    incomplete = 0
    n = len(subscribers)
    for k in range(spec["publishes"]):
        server = f"BENCHMARK{k}E"  # the mark the subscribers look for
        update = {"event": "update", "server": server, "status": "ready"}
        body = json.dumps(
            {"type": "server_update", "data": {"server": server, "update": update}}
        ).encode()
        request = (
            f"POST /api/v1/nodes/{spec['node']}/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{publish_port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sent = time.monotonic()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        if int(head[9:12]) != 202:
            raise RuntimeError(f"publish answered {head[:12]!r}")
        deadline = sent + spec["timeout"]
        while len(arrivals.get(k, [])) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        got = arrivals.get(k, [])
        if len(got) < n:
            incomplete += 1
        if got:
            last.append((max(got) - sent) * 1000)
            each.extend((t - sent) * 1000 for t in got)
        await asyncio.sleep(spec["gap"])
    writer.close()
    cpu = time.process_time() - cpu0
    for sub in subscribers:
        if sub.task is not None:
            sub.task.cancel()
    await asyncio.gather(*(s.task for s in subscribers if s.task), return_exceptions=True)
    return {
        "last_ms": last,
        "each_ms": each,
        "incomplete": incomplete,
        "subscribers": n,
        "client_cpu_seconds": cpu,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as spec_file:
        print(json.dumps(asyncio.run(run(json.load(spec_file)))))
