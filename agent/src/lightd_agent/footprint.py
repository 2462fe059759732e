"""The agent's resident memory: what it can cut without changing what it does.

glibc gives every thread that allocates its own malloc arena (up to eight per core), and
each arena keeps the memory it once held. The agent's threads (Docker calls through
``asyncio.to_thread``, Docker's event stream, the durable writer) allocate little and briefly,
so two arenas serve them as well as many: :func:`limit_malloc_arenas` sets ``M_ARENA_MAX`` to
2 (the value ``MALLOC_ARENA_MAX=2`` in the environment gives) before any thread starts. An
environment that sets ``MALLOC_ARENA_MAX`` itself keeps its own value; other C libraries
(musl) have no such knob and are left alone.

glibc also keeps the free memory at the top of each arena's heap and in its bins instead of
handing it back: after start-up and a burst of installs the agent held about 4.5 MiB it no
longer used (figure 7a: 80.0 MiB idle without, 75.5 MiB with). :class:`HeapTrimmer` calls
``malloc_trim(0)`` once a second from a thread of its own; a call that has nothing to give
back costs microseconds, one that frees a few MiB about 0.3 ms, with the GIL released.

Modules the libraries import for the agent's nothing: httpx's ``__init__`` imports its
command-line client (``httpx._main``), which loads ``rich`` and ``pygments`` wherever they are
installed (they come with the dev tools, not with the agent), and FastAPI imports
``pydantic.v1`` for every route it builds only to tell whether a model is a v1 model, which it
no longer supports. Both fall back by themselves when the import fails (httpx's ``main``
then says its CLI is missing; FastAPI answers "not a v1 model", true of every model where
``pydantic.v1`` cannot be loaded). The Docker SDK's HTTP library, ``requests``, imports a
character-set guesser (``charset_normalizer``, or ``chardet`` where installed), which loads
every multibyte codec of the standard library on import (about 3 MiB). ``requests`` asks it
only for a body whose ``Content-Type`` is neither text nor JSON and names no charset (text
without a charset is ISO-8859-1, JSON UTF-8, with or without a guesser); from 2.32 on, which
the agent requires, it reads such a body as UTF-8 when there is no guesser. Docker's API
answers JSON (and ``text/plain; charset=utf-8`` for its ping), so the guess is never made.
:func:`skip_unused_imports` makes these imports fail in the ``lightd run`` process (a
``None`` in ``sys.modules``), before httpx, FastAPI and the Docker SDK are loaded: about
3 MiB for httpx's client where the dev tools are installed, 1 MiB for ``pydantic.v1``, 3 MiB
for the guesser; the warning ``requests`` gives when it finds no guesser ("Unable to find
acceptable character detection dependency") is silenced, since that is the intended state.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable

__all__ = [
    "UNUSED_MODULES",
    "HeapTrimmer",
    "limit_malloc_arenas",
    "malloc_trim",
    "skip_unused_imports",
]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


TRIM_INTERVAL = 1.0
"""Seconds between two trims of :class:`HeapTrimmer`."""


def _glibc(function: str) -> Callable[..., int] | None:
    try:
        # the process's own symbols, the C library among them: no search of the library path
        found: Callable[..., int] = getattr(ctypes.CDLL(None), function)
    except (OSError, AttributeError, TypeError):
        # not glibc: musl has neither knob, and Windows takes no None for a library
        return None
    return found


_GUESSERS = ("charset_normalizer", "chardet")
"""``requests``' character-set guessers (the one it finds first is imported)."""

UNUSED_MODULES = ("httpx._main", "pydantic.v1", *_GUESSERS)
"""Modules ``lightd run`` never uses that its libraries would import: see the module's text."""

_NO_GUESSER = "Unable to find acceptable character detection dependency"
"""The start of the warning ``requests`` gives on import when no guesser can be imported."""


def skip_unused_imports(modules: tuple[str, ...] = UNUSED_MODULES) -> list[str]:
    """Make importing ``modules`` fail in this process (call before httpx, FastAPI and the
    Docker SDK are imported); the ones skipped, leaving any already imported as they are."""
    skipped = []
    for name in modules:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # "not importable"
            skipped.append(name)
    if set(_GUESSERS) & set(skipped):
        warnings.filterwarnings("ignore", message=_NO_GUESSER, module="requests")
    return skipped


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before threads start); whether it was applied."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, arenas))


def malloc_trim() -> bool | None:
    """Give the C heap's free memory back to the system now: whether glibc released any,
    ``None`` where there is no ``malloc_trim``."""
    trim = _glibc("malloc_trim")
    return None if trim is None else bool(trim(0))


class HeapTrimmer:
    """A daemon thread calling ``malloc_trim(0)`` every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = TRIM_INTERVAL) -> None:
        self.interval = interval
        self.trims = 0  # calls made (for tests)
        self._trim = _glibc("malloc_trim")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start trimming; ``False`` (and nothing started) without glibc's ``malloc_trim``."""
        if self._trim is None:
            return False
        self._thread = threading.Thread(target=self._run, name="lightd-heap-trim", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        assert self._trim is not None
        while not self._stop.wait(self.interval):
            self._trim(0)
            self.trims += 1
