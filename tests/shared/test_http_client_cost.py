"""An HTTP request made with httpx, as both programs make them, imports nothing.

httpcore (under httpx) calls ``import sniffio`` each time it makes a lock or an event, several
times per request. Without ``sniffio`` installed every one of those is a failed import: a
search of every ``sys.path`` entry, about a third of a request's CPU on this project's
machines (the remote sync's updates, the coordinator's dispatch hop). Both programs depend on
``sniffio`` for that; this test fails if a request searches for any module again.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

import httpx
import pytest

_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)


class _Counting(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: notes every module searched for, finds nothing itself."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        self.searched.append(fullname)
        return None


async def _requests(count: int, finder: _Counting) -> list[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(_ANSWER)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed its kept-alive connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(3):  # the first requests may import what httpx loads lazily
                assert (await client.post("/update", json={"n": 0})).status_code == 200
            finder.searched.clear()
            for n in range(count):
                response = await client.post("/update", json={"n": n})
                assert response.status_code == 200 and response.json() == {"ok": True}
            return list(finder.searched)
    finally:
        server.close()
        await server.wait_closed()


def test_a_request_searches_for_no_module() -> None:
    finder = _Counting()
    sys.meta_path.insert(0, finder)
    try:
        searched = asyncio.run(_requests(20, finder))
    finally:
        sys.meta_path.remove(finder)
    assert searched == [], f"each request searched sys.path for: {sorted(set(searched))}"


@pytest.mark.parametrize("distribution", ["lightd-agent", "lightd-coordinator"])
def test_both_programs_depend_on_sniffio(distribution: str) -> None:
    from importlib.metadata import requires

    names = [
        r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requires(distribution) or []
    ]
    assert "sniffio" in names
