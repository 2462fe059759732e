"""Writing into a volume: always a new file beside the target, then a rename.

A write never opens an existing file for writing: the content goes into a temporary file
(``.lightd-tmp-<random>``, created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the target's own
directory, by handle) which then *replaces the directory entry* (``rename``) or, when nothing
may be replaced, is linked in under the target's name (``link`` fails if the name exists, so
"must not exist" holds without a check-then-create window). Whatever the target was (a hard
link to a host file, a link planted a moment ago), its inode's content is never touched: only
the volume's directory entry changes. A failed or cut-off write removes its temporary file.

Replacing keeps the old file's permission bits and owner; a new file takes ``0644`` and its
directory's owner (the agent runs as root, the server's processes may not).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from types import TracebackType

from lightd_agent.errors import BadRequest, Conflict
from lightd_agent.files.walker import Refused, check_regular, describe, lstat_at, os_error

__all__ = ["TMP_PREFIX", "AtomicFile", "is_temporary"]

TMP_PREFIX = ".lightd-tmp-"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def is_temporary(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


class AtomicFile:
    """A file written beside ``name`` in ``dir_fd`` and put in place by :meth:`commit`.

    Use as a context manager: leaving it without a commit (an error, a cut-off upload)
    removes the temporary file.
    """

    def __init__(
        self, dir_fd: int, name: str, where: str, on_abort: Callable[[], None] | None = None
    ) -> None:
        self.on_abort = on_abort
        self.dir_fd = dir_fd
        self.name = name
        self.where = where
        self.size = 0
        self.temp = TMP_PREFIX + secrets.token_hex(8)
        try:
            self.fd = os.open(self.temp, _CREATE, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            raise os_error(exc, where) from None
        self._done = False

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
                self.size += written
        except OSError as exc:
            raise os_error(exc, self.where) from None

    def commit(self, *, replace: bool = True, mode: int | None = None) -> None:
        """Put the file in place: over a regular file (``replace``), else only where no entry
        of that name exists (409)."""
        existing = lstat_at(self.dir_fd, self.name)
        if existing is not None:
            if not replace:
                raise Conflict(f"{self.where}: already exists")
            if stat.S_ISDIR(existing.st_mode):
                raise BadRequest(f"{self.where}: is a directory")
            check_regular(existing, self.where)
        try:
            if existing is not None:
                os.fchmod(self.fd, stat.S_IMODE(existing.st_mode) & 0o777)
                with contextlib.suppress(OSError):
                    os.fchown(self.fd, existing.st_uid, existing.st_gid)
            else:
                os.fchmod(self.fd, 0o644 if mode is None else mode)
                with contextlib.suppress(OSError):
                    parent = os.fstat(self.dir_fd)
                    os.fchown(self.fd, parent.st_uid, parent.st_gid)
            os.fsync(self.fd)
            if replace:
                os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            else:
                os.link(
                    self.temp,
                    self.name,
                    src_dir_fd=self.dir_fd,
                    dst_dir_fd=self.dir_fd,
                    follow_symlinks=False,
                )
                os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise BadRequest(f"{self.where}: is a directory") from None
            raise os_error(exc, self.where) from None
        self._done = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self._done:
            with contextlib.suppress(OSError):
                os.unlink(self.temp, dir_fd=self.dir_fd)
            self._done = True
            if self.on_abort is not None:
                self.on_abort()


def refuse_special(info: os.stat_result, where: str) -> None:
    """Refuse devices, FIFOs and sockets (a listing shows them; nothing else touches them)."""
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise Refused(f"{where}: is {describe(info.st_mode)}, which the file routes leave alone")
