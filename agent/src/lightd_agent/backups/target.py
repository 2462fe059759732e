"""Where archives are kept: one small interface, its implementations side by side.

:class:`Target` has four methods; :mod:`.local` (a directory under the agent's storage) and
:mod:`.s3` (an S3-compatible bucket, multipart upload streamed from the archive writer)
implement it. Every method blocks: the service calls them in a thread.

``store(key, produce)`` calls ``produce(sink)`` with a writable stream and keeps what it wrote
under ``key`` only if ``produce`` returns: an exception from it (or from the storage) leaves
nothing behind under ``key`` and is raised.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["Produce", "Target", "TargetError"]

Produce = Callable[[BinaryIO], None]


class TargetError(Exception):
    """The storage refused or could not be reached; the message says which and why."""


class Target(ABC):
    """A place to keep archives by key (``<server>/<backup id>.tar.gz``)."""

    kind: str

    @abstractmethod
    def store(self, key: str, produce: Produce) -> None:
        """Keep what ``produce`` writes under ``key``, all of it or nothing."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """The archive under ``key`` for reading; :class:`TargetError` if it is gone."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is already gone."""

    def describe(self) -> str:
        """Where this target keeps archives, for logs and errors (never a secret)."""
        return self.kind
