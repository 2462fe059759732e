"""The archive writer: a volume's content as a tar.gz stream, checksummed as it is written.

The walk never leaves the volume: every directory is opened relative to its parent's handle
with ``O_NOFOLLOW`` and every file with ``O_NOFOLLOW | O_NONBLOCK`` (so a symlink or a FIFO a
container planted between the listing and the open is never followed or waited on), and the
entry is described from ``fstat`` of what was opened. What an archive cannot safely carry is
left out and named in :attr:`ArchiveStats.skipped`:

- device files, FIFOs and sockets (never read);
- symlinks whose target is absolute or climbs out of the volume (a restore refuses those);
- the restore's own staging directory (:data:`STAGING`) and ``lost+found`` at the volume's
  root (:data:`KEPT`).

Symlinks inside the volume are kept as symlinks (never followed); hard links inside it are kept
as links to the first path of the same file. Paths matching the ignore list (``.gitignore``
semantics, through ``pathspec``, imported by the first backup) are left out; an ignored
directory is not descended into.

The output is written through :class:`_Hashing`, so the archive's size and sha256 are known
when the stream ends, without reading it back.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import pathspec

__all__ = [
    "KEPT",
    "MAX_SKIPPED_NAMED",
    "STAGING",
    "ArchiveStats",
    "Cancelled",
    "ignore_spec",
    "link_escapes",
    "write_archive",
]

STAGING = ".lightd-restore"
"""The restore's staging directory at a volume's root; never part of a backup."""

KEPT: frozenset[str] = frozenset({STAGING, "lost+found"})
"""Names at a volume's root that belong to the agent or the filesystem, not to the server: never
backed up, never swapped by a restore (``lost+found`` when the root is an ext4 mount)."""

MAX_SKIPPED_NAMED = 100

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1024 * 1024


class Cancelled(Exception):
    """The work was cut off (the agent shuts down)."""


@dataclass
class ArchiveStats:
    size: int = 0
    checksum: str = ""
    files: int = 0
    skipped: list[str] = field(default_factory=list)

    def skip(self, path: str, why: str) -> None:
        if len(self.skipped) < MAX_SKIPPED_NAMED:
            self.skipped.append(f"{path} ({why})")


def ignore_spec(patterns: list[str]) -> pathspec.PathSpec[Any]:
    """The ignore list as ``.gitignore`` semantics (``!`` re-includes, ``dir/`` only dirs)."""
    import pathspec  # here: an agent that makes no backup never loads it (31 modules)

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def link_escapes(member: str, target: str) -> bool:
    """Whether a symlink at ``member`` (relative path) pointing at ``target`` leaves the root."""
    if not target or target.startswith("/"):
        return True
    depth = member.count("/")  # directories above the link, inside the root
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class _Hashing(io.RawIOBase):
    """A write-only stream that counts and hashes what passes through to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self._sink.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


class _Exactly(io.RawIOBase):
    """``size`` bytes of an open file: cut if it grew, padded with zeros if it shrank."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size
        self.short = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data = b"" if self.short else os.read(self._fd, min(want, _CHUNK))
        if not data:
            self.short = True
            data = bytes(min(want, _CHUNK))
        self._left -= len(data)
        return data


def _info(path: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = ""
    info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def write_archive(
    root: Path,
    sink: BinaryIO,
    ignore: pathspec.PathSpec[Any],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ArchiveStats:
    """Write ``root``'s content as tar.gz into ``sink``; the archive's size and sha256."""
    stats = ArchiveStats()
    out = _Hashing(sink)
    links: dict[tuple[int, int], str] = {}
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        with tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:

            def walk(dir_fd: int, prefix: str) -> None:
                with os.scandir(dir_fd) as entries:
                    names = sorted(entry.name for entry in entries)
                for name in names:
                    if cancelled():
                        raise Cancelled("the backup was cut off")
                    if not prefix and name in KEPT:
                        continue
                    path = prefix + name
                    try:
                        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed since the listing
                    if stat.S_ISDIR(st.st_mode):
                        if ignore.match_file(path + "/"):
                            continue
                        try:
                            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                        except (FileNotFoundError, NotADirectoryError, OSError) as exc:
                            stats.skip(path, f"cannot open: {exc.strerror}")
                            continue
                        try:
                            opened = os.fstat(child)
                            info = _info(path, opened)
                            info.type = tarfile.DIRTYPE
                            tar.addfile(info)
                            stats.files += 1
                            walk(child, path + "/")
                        finally:
                            os.close(child)
                    elif ignore.match_file(path):
                        continue
                    elif stat.S_ISLNK(st.st_mode):
                        target = os.readlink(name, dir_fd=dir_fd)
                        if link_escapes(path, target):
                            stats.skip(path, "symlink pointing out of the volume")
                            continue
                        info = _info(path, st)
                        info.type = tarfile.SYMTYPE
                        info.linkname = target
                        tar.addfile(info)
                        stats.files += 1
                    elif stat.S_ISREG(st.st_mode):
                        add_file(tar, dir_fd, name, path)
                    else:
                        stats.skip(path, "not a regular file, directory or symlink")
                    if progress is not None:
                        progress(out.size, stats.files)

            def add_file(tar: tarfile.TarFile, dir_fd: int, name: str, path: str) -> None:
                try:
                    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
                except OSError as exc:  # became a symlink (ELOOP), removed, ...
                    stats.skip(path, f"cannot open: {exc.strerror}")
                    return
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        stats.skip(path, "not a regular file")
                        return
                    info = _info(path, st)
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in links:
                        info.type = tarfile.LNKTYPE
                        info.linkname = links[key]
                        tar.addfile(info)
                    else:
                        if st.st_nlink > 1:
                            links[key] = path
                        info.size = st.st_size
                        body = _Exactly(fd, st.st_size)
                        tar.addfile(info, body)
                        if body.short:
                            stats.skip(path, "shrank while read; padded with zeros")
                    stats.files += 1
                finally:
                    os.close(fd)

            walk(root_fd, "")
    finally:
        os.close(root_fd)
    stats.size = out.size
    stats.checksum = out.digest.hexdigest()
    return stats
