"""What a disk-image store does: one fixed-size filesystem per server, mounted at its volume root.

:class:`DiskImages` is the seam; :class:`~lightd_agent.disks.loop.LoopExt4` is the one real
implementation (an ext4 image file on a loop device). Every method is synchronous and may block
for as long as ``mkfs.ext4``/``e2fsck``/``resize2fs`` take: callers run them in a thread
(``asyncio.to_thread``), under the server's lock.

::

    DiskError (409)   a disk operation refused or failed; the message says why and what to do
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from lightd_agent.errors import Conflict

__all__ = ["DiskError", "DiskImages", "Probe", "Usage"]


class DiskError(Conflict):
    """A disk operation was refused or failed (409); nothing was left half-done."""


@dataclass(frozen=True)
class Usage:
    """A mounted disk as ``statvfs`` sees it, in bytes; ``limit`` is the image's size."""

    size: int
    used: int
    available: int
    limit: int


@dataclass(frozen=True)
class Probe:
    """What the host allows: ``problem`` is why disk images cannot work here (``None``: they
    can); ``online_grow`` whether a mounted image can grow (the kernel asks CAP_SYS_RESOURCE)."""

    problem: str | None
    online_grow: bool = False


class DiskImages(ABC):
    """One disk image per server id, mounted at that server's volume root."""

    @abstractmethod
    def probe(self) -> Probe:
        """Try the whole cycle once (make, mount, grow, unmount) and say what works."""

    @abstractmethod
    def root(self, server: str) -> Path:
        """The volume root the image is mounted at (``storage.volumes_dir/<id>``)."""

    @abstractmethod
    def exists(self, server: str) -> bool:
        """Whether the server has an image."""

    @abstractmethod
    def mounted(self, server: str) -> bool:
        """Whether the server's own image is mounted at its root right now."""

    @abstractmethod
    def ensure(self, server: str, size: int) -> None:
        """Make the image if missing (``size`` bytes), mount it if it is not; an existing image
        of another size is resized to ``size`` (the server is not running)."""

    @abstractmethod
    def mount(self, server: str) -> None:
        """Check and mount an existing image (after a host restart); :class:`DiskError` if it is
        missing, damaged beyond what ``e2fsck -p`` repairs, or cannot be mounted."""

    @abstractmethod
    def unmount(self, server: str) -> None:
        """Unmount the image (keeping it); nothing if it is not mounted."""

    @abstractmethod
    def remove(self, server: str) -> None:
        """Unmount and delete the image; nothing if there is none."""

    @abstractmethod
    def usage(self, server: str) -> Usage:
        """The mounted image's size, use and free space."""

    @abstractmethod
    def resize(self, server: str, size: int, *, running: bool, online_grow: bool) -> None:
        """Grow or shrink the image to ``size`` bytes.

        Growing a running server's disk needs ``online_grow``; shrinking needs it stopped
        (``running`` false) and its data to fit. Refusals raise :class:`DiskError` before
        anything changed; a failure half-way puts the old image back, mounted.
        """
