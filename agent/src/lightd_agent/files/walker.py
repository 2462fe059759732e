"""Walking a volume by directory handles: nothing outside the volume root is ever reached.

A path from a request is split into names (:func:`split_path`: ``..`` and NUL refused, ``.``
and empty names dropped, a leading ``/`` is the volume root). It is then walked one name at a
time from an open handle of the root: each directory is opened *relative to its parent's
handle* with ``O_NOFOLLOW | O_DIRECTORY``, so a symlink anywhere on the way is refused by the
kernel itself, at the moment of the open. There is no check-then-use window: whatever the
container swaps in between two calls, the next open either finds a real directory (inside the
volume, since a handle never leaves the mount it was opened on) or fails.

The final name is looked at with ``os.stat(..., dir_fd=, follow_symlinks=False)``; a file to
read is taken as a bare ``O_PATH | O_NOFOLLOW`` handle, checked on that handle (a regular file
with one link) and only then reopened for reading through ``/proc/self/fd``, so a device or FIFO
swapped in is never opened. A file with more than one hard link may be the other name of a
file outside the volume (a host file linked in): its content is never read or written through
the file routes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from lightd_agent.errors import AgentError, BadRequest, Conflict, NotFound, PayloadTooLarge

__all__ = [
    "DIR_FLAGS",
    "Refused",
    "check_regular",
    "closing_fd",
    "describe",
    "join",
    "lstat_at",
    "open_dir",
    "open_regular",
    "os_error",
    "split_path",
    "walk_dir",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 128


class Refused(BadRequest):
    """A path the file routes do not take (422): a link, a device, a hard-linked file."""


def split_path(path: str) -> list[str]:
    """The names of ``path`` from the volume root; ``..`` and NUL are refused (422)."""
    if "\x00" in path:
        raise BadRequest(f"path {path[:200]!r} holds a NUL character")
    names = [name for name in path.split("/") if name not in ("", ".")]
    if ".." in names:
        raise BadRequest(
            f"path {path[:200]!r} holds '..': paths are relative to the volume root and "
            "may not climb out of it"
        )
    if len(names) > MAX_DEPTH:
        raise BadRequest(f"path {path[:200]!r} is nested deeper than {MAX_DEPTH} directories")
    for name in names:
        if len(name.encode("utf-8", "surrogateescape")) > 255:
            raise BadRequest(f"name {name[:64]!r}… is longer than 255 bytes")
    return names


def join(names: list[str] | tuple[str, ...]) -> str:
    """The path of ``names`` as answers show it: from the root, starting with ``/``."""
    return "/" + "/".join(names)


def describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def os_error(exc: OSError, where: str) -> AgentError:
    """An ``OSError`` of a file operation as the 4xx it means (never a 500)."""
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(f"{where}: no such file or directory")
    if code == errno.EEXIST or code == errno.ENOTEMPTY:
        return Conflict(f"{where}: already exists")
    if code == errno.ENOTDIR:
        return BadRequest(f"{where}: a part of the path is not a directory")
    if code == errno.EISDIR:
        return BadRequest(f"{where}: is a directory")
    if code == errno.ELOOP:
        return Refused(f"{where}: is a symbolic link, which the file routes never follow")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return PayloadTooLarge(f"{where}: no space left on the volume ({exc.strerror})")
    if code == errno.EFBIG:
        return PayloadTooLarge(f"{where}: file too large")
    if code == errno.ENAMETOOLONG:
        return BadRequest(f"{where}: name too long")
    if code == errno.EINVAL:
        return BadRequest(f"{where}: invalid ({exc.strerror})")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Conflict(f"{where}: not permitted ({exc.strerror})")
    if code == errno.EXDEV:
        return Conflict(f"{where}: crosses a mount point")
    return Conflict(f"{where}: {exc.strerror or type(exc).__name__}")


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` in ``dir_fd``, not followed; ``None`` when there is none."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_dir(dir_fd: int, name: str, where: str) -> int:
    """Open the directory ``name`` of ``dir_fd`` without following a link (4xx on refusal)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            found = lstat_at(dir_fd, name)
            if found is not None and stat.S_ISLNK(found.st_mode):
                raise Refused(
                    f"{where}: is a symbolic link, which the file routes never follow"
                ) from None
            if found is not None:
                raise BadRequest(
                    f"{where}: is {describe(found.st_mode)}, not a directory"
                ) from None
        raise os_error(exc, where) from None


def walk_dir(
    root_fd: int, names: list[str], *, create: bool = False, made: list[list[str]] | None = None
) -> int:
    """A new handle of the directory ``names`` below ``root_fd`` (the caller closes it).

    With ``create``, missing directories are made (``0755``) on the way, each opened by
    handle right after, so a link planted in between is refused all the same; each one made is
    added to ``made`` (so a write that fails can remove them again).
    """
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(names):
            where = join(names[: depth + 1])
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    _inherit_owner(fd, name)
                    if made is not None:
                        made.append(names[: depth + 1])
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise os_error(exc, where) from None
            child = open_dir(fd, name, where)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _inherit_owner(dir_fd: int, name: str) -> None:
    """Give a new entry its directory's owner (the agent runs as root; the server may not)."""
    with contextlib.suppress(OSError):
        parent = os.fstat(dir_fd)
        os.chown(name, parent.st_uid, parent.st_gid, dir_fd=dir_fd, follow_symlinks=False)


def check_regular(info: os.stat_result, where: str) -> None:
    """Refuse anything but a regular file with a single link (422)."""
    if not stat.S_ISREG(info.st_mode):
        raise Refused(
            f"{where}: is {describe(info.st_mode)}; only regular files are read or written"
        )
    if info.st_nlink > 1:
        raise Refused(
            f"{where}: has {info.st_nlink} hard links; such a file may be another name of a "
            "file outside the volume, so the file routes neither read nor write it"
        )


def open_regular(dir_fd: int, name: str, where: str) -> int:
    """Open the regular file ``name`` of ``dir_fd`` for reading.

    The entry is first taken as a bare handle (``O_PATH | O_NOFOLLOW``: nothing is opened, a
    link is taken as the link itself), checked on that handle, and only then reopened for
    reading through ``/proc/self/fd`` (the same inode, no path walked again): a device or a
    FIFO swapped in at any moment is never opened.
    """
    try:
        bare = os.open(name, PATH_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise os_error(exc, where) from None
    try:
        before = os.fstat(bare)
        check_regular(before, where)
        try:
            fd = os.open(f"/proc/self/fd/{bare}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise os_error(exc, where) from None
    finally:
        os.close(bare)
    try:
        after = os.fstat(fd)
        check_regular(after, where)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise Conflict(f"{where}: changed while it was opened; try again")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)
