"""The ``local`` target: archives in a directory under the agent's storage.

``<dir>/<server>/<backup id>.tar.gz``, written as ``….partial`` and renamed when whole (after
an ``fsync``), so a crash never leaves a half archive under a backup's name. The default
directory is ``<storage.base_path>/state/backups``: inside the state directory, which no
server may bind-mount, so one server cannot read another's backups.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from lightd_agent.backups.target import Produce, Target, TargetError

__all__ = ["LocalTarget"]


class LocalTarget(Target):
    kind = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key

    def store(self, key: str, produce: Produce) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as sink:
                produce(sink)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(partial, path)
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise TargetError(f"the archive {key} is missing from {self.directory}") from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def describe(self) -> str:
        return f"local {self.directory}"

    def discard_partial(self) -> list[Path]:
        """At start: archives a backup cut off by a crash was writing (never a backup's)."""
        found = sorted(self.directory.glob("*/*.tar.gz.partial")) if self.directory.is_dir() else []
        for path in found:
            with contextlib.suppress(OSError):
                path.unlink()
        return found
