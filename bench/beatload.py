"""The paced heartbeat client of figure 11: it plays a fleet of nodes, each beating on time.

``python -m bench.beatload SPEC.json`` sends every node's ``POST /api/v1/nodes/{id}/heartbeat``
once per ``interval``, the nodes' beats spread evenly over the interval (node ``i`` of ``n`` at
``i / n * interval``), for ``duration`` seconds, over ``connections`` keep-alive connections per
target (raw asyncio streams, so the client stays cheap). A beat that cannot be sent on time is
sent late, never dropped, so a server that falls behind shows as lateness and as a long gap
between a node's answered beats. Prints one JSON line: beats sent, 2xx answers, errors, the
lateness and request latency (p50/p99/max, ms), the connections still behind 30 s after the
end (``unfinished``), the longest gap between two answered beats of
one node (s), and the client's own CPU seconds.

The spec: ``{"targets": [{"port", "nodes": [...]}], "interval", "duration", "connections"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

__all__ = ["run"]

_BODY = b'{"status":"active"}'
_BATCH = 0.005  # the scheduler wakes every 5 ms and queues every beat due by then


def _request(port: int, node: str) -> bytes:
    return (
        f"POST /api/v1/nodes/{node}/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY


class _Target:
    def __init__(self, port: int, nodes: list[str]) -> None:
        self.port = port
        self.nodes = nodes
        self.requests = [_request(port, node) for node in nodes]
        self.queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()


class _Tally:
    def __init__(self, began: float) -> None:
        self.began = began
        self.sent = 0
        self.ok = 0
        self.errors = 0
        self.first_error: str | None = None
        self.lateness: list[float] = []
        self.latency: list[float] = []
        self.last_ok: dict[tuple[int, int], float] = {}
        self.max_gap = 0.0

    def answered(self, key: tuple[int, int], at: float) -> None:
        self.max_gap = max(self.max_gap, at - self.last_ok.get(key, self.began))
        self.last_ok[key] = at


async def _produce(target: _Target, spec: dict[str, Any], began: float, workers: int) -> None:
    n = len(target.nodes)
    step = spec["interval"] / n
    total = int(spec["duration"] / step)
    j = 0
    while j < total:
        now = time.monotonic()
        while j < total and began + j * step <= now + _BATCH:
            target.queue.put_nowait((began + j * step, j % n))
            j += 1
        await asyncio.sleep(_BATCH)
    for _ in range(workers):
        target.queue.put_nowait(None)


async def _work(target: _Target, tally: _Tally, index: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        while (item := await target.queue.get()) is not None:
            due, node = item
            sent = time.monotonic()
            tally.sent += 1
            tally.lateness.append(max(0.0, sent - due) * 1000)
            writer.write(target.requests[node])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            done = time.monotonic()
            tally.latency.append((done - sent) * 1000)
            status = int(head[9:12])
            if 200 <= status < 300:
                tally.ok += 1
                tally.answered((index, node), done)
            else:
                tally.errors += 1
                tally.first_error = tally.first_error or f"HTTP {status}"
    finally:
        writer.close()


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [float("nan")]

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [_Target(t["port"], t["nodes"]) for t in spec["targets"]]
    workers = spec["connections"]
    cpu0 = time.process_time()
    began = time.monotonic()
    tally = _Tally(began)
    tasks = [
        asyncio.create_task(_work(target, tally, index))
        for index, target in enumerate(targets)
        for _ in range(workers)
    ]
    producers = [_produce(target, spec, began, workers) for target in targets]
    await asyncio.gather(*producers)
    # every queued beat is still sent; bounded: a server that cannot drain in 30 s fails
    done, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    failures = [repr(t.exception()) for t in done if t.exception() is not None]
    end = time.monotonic()
    # a node whose last answered beat is long ago counts up to the end of the run
    for index, target in enumerate(targets):
        for node in range(len(target.nodes)):
            last = tally.last_ok.get((index, node), began)
            tally.max_gap = max(tally.max_gap, min(end, began + spec["duration"]) - last)
    return {
        "beats": tally.sent,
        "ok": tally.ok,
        "errors": tally.errors + len(failures),
        "first_error": tally.first_error or (failures[0] if failures else None),
        "unfinished": len(pending),  # connections whose queue did not drain in the 30 s
        "undrained": sum(t.queue.qsize() for t in targets),
        "seconds": end - began,
        "rate": tally.ok / (end - began) if end > began else 0.0,
        "lateness_ms": _quantiles(tally.lateness),
        "latency_ms": _quantiles(tally.latency),
        "max_gap_s": tally.max_gap,
        "client_cpu_seconds": time.process_time() - cpu0,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as spec_file:
        print(json.dumps(asyncio.run(run(json.load(spec_file)))))
