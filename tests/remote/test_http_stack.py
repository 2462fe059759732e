"""The HTTP stack under the remote client costs what it should: no import work per request."""

from __future__ import annotations

import asyncio
import sys

from httpcore._synchronization import current_async_library


def test_httpcore_finds_sniffio_instead_of_searching_for_it_on_every_request() -> None:
    """httpcore asks ``import sniffio`` which loop runs, four times per request; a failed
    import is not remembered, so without sniffio installed every ask searched sys.path
    again (about a fifth of the CPU of each request, docs/benchmarks.md, figure 6)."""

    async def ask() -> str:
        return current_async_library()

    assert asyncio.run(ask()) == "asyncio"
    assert "sniffio" in sys.modules
