"""Finding one middleware in a built app's stack (a fast path, to read its counters)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI

__all__ = ["layer"]

L = TypeVar("L")


def layer(app: FastAPI, kind: type[L]) -> L:
    """The app's middleware of type ``kind`` (the app must have been started: stack built)."""
    found: Any = app.middleware_stack
    while not isinstance(found, kind):
        found = found.app
    return found
