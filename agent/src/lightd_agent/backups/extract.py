"""Reading an archive back: every member checked, the stream's sha256 compared at the end.

A member is refused (and with it the whole restore) when its name is absolute, has a ``..``
part or names the staging directory; when it is a device, FIFO or anything but a file, a
directory, a symlink or a hard link; when a symlink's target is absolute or climbs out of the
volume; when a hard link points outside it; and when a path goes *through* a symlink the
archive made earlier (``a -> sub``, then ``a/x``), so chains of in-volume links cannot add up
to a way out. Modes, owners and times are kept as archived (the agent runs as root).

The checksum covers the whole compressed stream: the rest is read after the last member, so a
tampered archive is a :class:`ChecksumMismatch` even when the change is in the padding. When
the archive cannot be read at all, the rest is still hashed so that a tampered archive says
"checksum mismatch" rather than the decompressor's complaint.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from lightd_agent.backups.archive import KEPT, Cancelled, link_escapes

__all__ = ["ArchiveRefused", "ChecksumMismatch", "extract_archive"]


class ArchiveRefused(Exception):
    """The archive holds a member a restore must not write, or cannot be read."""


class ChecksumMismatch(ArchiveRefused):
    """The archive's sha256 is not the one recorded when it was written."""


class _HashingReader(io.RawIOBase):
    def __init__(self, source: BinaryIO, cancelled: Callable[[], bool]) -> None:
        self._source = source
        self._cancelled = cancelled
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._cancelled():
            raise Cancelled("the restore was cut off")
        data = self._source.read(n if n is not None and n >= 0 else 1024 * 1024)
        self.digest.update(data)
        self.size += len(data)
        return bytes(data)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1024 * 1024):
            pass


def _walk(path: str, symlinks: set[str]) -> str:
    """``path`` normalised inside the root; refuse ``..``/absolute and paths through symlinks."""
    if not path or path.startswith("/") or "\x00" in path:
        raise ArchiveRefused(f"archive member {path!r} is absolute or empty")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveRefused(f"archive member {path!r} has a '..' part")
    if not parts:
        raise ArchiveRefused(f"archive member {path!r} names the volume's root")
    if parts[0] in KEPT:
        raise ArchiveRefused(f"archive member {path!r} uses the reserved name {parts[0]}")
    # every directory on the way must not be a symlink the archive made
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in symlinks:
            raise ArchiveRefused(f"archive member {path!r} goes through a symlink")
    return "/".join(parts)


def _target_through_links(member: str, target: str, symlinks: set[str]) -> bool:
    """Whether resolving ``target`` from ``member``'s directory passes an archived symlink."""
    stack = member.split("/")[:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if "/".join(stack) in symlinks:
                return True
            stack.pop()
        else:
            stack.append(part)
    return False


def extract_archive(
    source: BinaryIO,
    dest: Path,
    checksum: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Extract the tar.gz ``source`` into the empty directory ``dest``; the member count.

    Raises :class:`ChecksumMismatch`, :class:`ArchiveRefused` or :class:`Cancelled`; ``dest``
    may then hold part of the archive (the caller throws it away).
    """
    reader = _HashingReader(source, cancelled)
    symlinks: set[str] = set()
    count = 0

    def check(member: tarfile.TarInfo, _dest: str) -> tarfile.TarInfo:
        nonlocal count
        name = _walk(member.name, symlinks)
        if member.issym():
            if link_escapes(name, member.linkname) or _target_through_links(
                name, member.linkname, symlinks
            ):
                raise ArchiveRefused(
                    f"archive member {name!r} is a symlink pointing out of the volume "
                    f"({member.linkname!r})"
                )
            symlinks.add(name)
        elif member.islnk():
            target = _walk(member.linkname, symlinks)
            if target in symlinks:
                raise ArchiveRefused(f"archive member {name!r} is a hard link to a symlink")
            member = member.replace(linkname=target, deep=False)
        elif not (member.isreg() or member.isdir()):
            raise ArchiveRefused(f"archive member {name!r} is a device, FIFO or other special file")
        count += 1
        if progress is not None:
            progress(reader.size, count)
        return member.replace(name=name, deep=False)

    try:
        with tarfile.open(fileobj=reader, mode="r|gz") as tar:
            tar.extractall(dest, numeric_owner=True, filter=check)
        reader.drain()
    except Cancelled:
        raise
    except (ArchiveRefused, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        try:
            reader.drain()
        except Exception:
            pass
        else:
            if reader.digest.hexdigest() != checksum:
                raise ChecksumMismatch(
                    f"checksum mismatch: the archive's sha256 is {reader.digest.hexdigest()}, "
                    f"{checksum} was recorded when it was written"
                ) from exc
        if isinstance(exc, ArchiveRefused):
            raise
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError):
            raise ArchiveRefused(f"extracting the archive failed: {exc}") from exc
        raise ArchiveRefused(f"the archive cannot be read: {exc}") from exc
    if reader.digest.hexdigest() != checksum:
        raise ChecksumMismatch(
            f"checksum mismatch: the archive's sha256 is {reader.digest.hexdigest()}, "
            f"{checksum} was recorded when it was written"
        )
    return count
