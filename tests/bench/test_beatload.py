"""The paced heartbeat client of figure 11 (``bench.beatload``) against a real loopback server.

It must send every node's beats on schedule, count a refused beat as an error, and report a
node none of whose beats was answered as a gap as long as the run: the figure's "held" verdict
rests on those three.
"""

from __future__ import annotations

import asyncio

from bench import beatload

REFUSED = b"/api/v1/nodes/node-3/heartbeat"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            status = b"503 Service Unavailable" if REFUSED in head else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _run() -> dict[str, object]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        spec = {
            "targets": [{"port": port, "nodes": [f"node-{i}" for i in range(8)]}],
            "interval": 0.25,
            "duration": 1.0,
            "connections": 2,
        }
        return await beatload.run(spec)
    finally:
        server.close()
        await server.wait_closed()


def test_beatload_sends_every_beat_counts_refusals_and_the_silent_node() -> None:
    result = asyncio.run(_run())
    assert result["beats"] == 32  # 8 nodes, a beat every 0.25 s, for 1 s
    assert result["errors"] == 4  # node-3's four beats answered 503
    assert result["ok"] == 28
    assert result["unfinished"] == 0
    gap = result["max_gap_s"]
    assert isinstance(gap, float) and gap >= 0.9  # node-3 was never answered in the run
