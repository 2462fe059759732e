"""The agent's resident memory: what it can cut without changing what it does.

glibc gives every thread that allocates its own malloc arena (up to eight per core), and
each arena keeps the memory it once held. The agent's threads (Docker calls through
``asyncio.to_thread``, Docker's event stream, the durable writer) allocate little and briefly,
so two arenas serve them as well as many: :func:`limit_malloc_arenas` sets ``M_ARENA_MAX`` to
2 (the value ``MALLOC_ARENA_MAX=2`` in the environment gives) before any thread starts. An
environment that sets ``MALLOC_ARENA_MAX`` itself keeps its own value; other C libraries
(musl) have no such knob and are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["limit_malloc_arenas"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before threads start); whether it was applied."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
