"""Small timing and addressing helpers both programs need, written once.

- :func:`backoff_delay`: exponential backoff with jitter, capped (Prefect's client): attempt
  ``n`` waits a random time between half and all of ``min(cap, base * 2**(n-1))``, so many
  clients that lost the same peer do not all come back in the same second;
- :func:`ticker_wait` and :func:`every`: a drift-free ticker (arq's ``worker.py``): the next
  run starts one period after the previous *start*, ``wait = max(0, step - (after - before))``,
  and a failing run is logged and never ends the loop;
- :func:`url_host` and :func:`listen_url`: a listen host as a URL's host (IPv6 in brackets; a
  wildcard address becomes loopback for a client on the same machine).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

__all__ = ["backoff_delay", "every", "listen_url", "ticker_wait", "url_host"]

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based), with jitter, at most ``cap``."""
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(cap, base * (2.0**exponent))
    return (rng or random).uniform(ceiling / 2, ceiling)


def ticker_wait(step: float, started: float, now: float) -> float:
    """How long a ticker sleeps after a run that started at ``started`` (same clock as ``now``)."""
    return max(0.0, step - (now - started))


async def every(
    step: float,
    work: Callable[[], Awaitable[object]],
    *,
    name: str,
    log: logging.Logger,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``work`` every ``step`` seconds, drift-free, until cancelled; log what fails."""
    while True:
        began = clock()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; it runs again in %gs", name, step)
        await asyncio.sleep(ticker_wait(step, began, clock()))


def url_host(host: str) -> str:
    """``host`` as the host part of a URL: a bare IPv6 address goes in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def listen_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL a client on this machine uses for a server listening on ``host:port``."""
    reachable = "127.0.0.1" if host in _WILDCARDS else host
    return f"{scheme}://{url_host(reachable)}:{port}"
