"""A lean HTTP/1.1 load client for figure 3, run as its own process (one core of two).

``python -m bench.httpload SPEC.json`` opens ``connections`` keep-alive connections to
127.0.0.1 and sends requests back to back for ``duration`` seconds (and at most
``max_requests``), then prints one JSON line: requests, 2xx answers, errors, elapsed seconds
the client's own CPU seconds (so a client-bound ceiling shows) and the
requests' latency p50/p99/max (a server that stalls shows in the max). Raw asyncio streams keep
the client cheap: the server, not the client, should be the limit.

The spec: ``{"port", "method", "paths": [...], "body", "connections", "duration",
"max_requests", "headers": {...}}``; the paths are used round robin (one per node id).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

__all__ = ["run"]


async def _connection(
    spec: dict[str, Any],
    requests: list[bytes],
    state: dict[str, int],
    latencies: list[float],
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
    try:
        while time.monotonic() < deadline and state["sent"] < spec["max_requests"]:
            index = state["sent"]
            state["sent"] += 1
            sent = time.perf_counter()
            writer.write(requests[index % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - sent) * 1000)
            status = int(head[9:12])
            if 200 <= status < 300:
                state["ok"] += 1
            else:
                state["errors"] += 1
                if state["errors"] <= 3:
                    state.setdefault("first_error", status)
    finally:
        writer.close()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    body = spec.get("body", "").encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    requests = [
        (
            f"{spec['method']} {path} HTTP/1.1\r\nHost: 127.0.0.1:{spec['port']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        + body
        for path in spec["paths"]
    ]
    state = {"sent": 0, "ok": 0, "errors": 0}
    latencies: list[float] = []
    began = time.monotonic()
    cpu0 = time.process_time()
    deadline = began + spec["duration"]
    results = await asyncio.gather(
        *(
            _connection(spec, requests, state, latencies, deadline)
            for _ in range(spec["connections"])
        ),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - began
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {
        "requests": state["sent"],
        "ok": state["ok"],
        "errors": state["errors"] + len(failures),
        "first_error": state.get("first_error") or (failures[0] if failures else None),
        "seconds": elapsed,
        "rate": state["ok"] / elapsed if elapsed > 0 else 0.0,
        "client_cpu_seconds": time.process_time() - cpu0,
        "latencies_ms": _quantiles(latencies),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [float("nan")]

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as spec_file:
        print(json.dumps(asyncio.run(run(json.load(spec_file)))))
