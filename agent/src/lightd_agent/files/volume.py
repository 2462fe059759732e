"""One server's volume root and what the file routes do in it (blocking; run in threads).

Each operation opens the root anew (``O_NOFOLLOW | O_DIRECTORY``) and walks from that handle
(:mod:`lightd_agent.files.walker`); writes go through
:class:`~lightd_agent.files.writer.AtomicFile`.
What is refused, and why:

- ``..``, NUL: 422 before anything is opened; a leading ``/`` is the volume root.
- a symbolic link anywhere on a path: 422 (never followed; a listing shows it as a link).
- devices, FIFOs, sockets: listed, never opened, copied, archived or changed (422).
- a regular file with more than one hard link: listed and deletable (unlinking one name leaves
  the other file alone), never read, written, chmod-ed, copied or archived (422; skipped inside
  a folder copy or an archive and counted in ``skipped``).
- names that are not valid UTF-8: left out of listings and searches (counted in ``hidden``),
  and no request can name one (a JSON text holding one is refused with 422). Copying,
  deleting or archiving a folder that holds one carries it along by its bytes.

Over 400 lines: one idea, the operations of one volume, each a short method over the same
walker; listing and search (read-only) could split off into a module of their own.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from lightd_agent.errors import AgentError, BadRequest, Conflict, NotFound, PayloadTooLarge
from lightd_agent.files.walker import (
    Refused,
    check_regular,
    closing_fd,
    describe,
    join,
    lstat_at,
    open_dir,
    open_regular,
    os_error,
    split_path,
    walk_dir,
)
from lightd_agent.files.writer import AtomicFile, is_temporary
from lightd_shared.files import FileDone, FileEntries, FileEntry, FileNames, FileSearch
from lightd_shared.wire import encodable

__all__ = ["CHUNK", "Volume", "parse_mode"]

CHUNK = 256 * 1024
_MAX_TREE_DEPTH = 128


def parse_mode(text: str) -> int:
    mode = int(text, 8)
    if mode > 0o777:
        raise BadRequest(f"mode {text!r}: only permission bits (at most 0777) may be set")
    return mode


def _entry(names: list[str], name: str, info: os.stat_result) -> FileEntry:
    return FileEntry(
        name=name,
        path=join([*names, name]),
        size=info.st_size,
        is_dir=stat.S_ISDIR(info.st_mode),
        is_symlink=stat.S_ISLNK(info.st_mode),
        mode=f"{stat.S_IMODE(info.st_mode):04o}",
        modified=datetime.fromtimestamp(info.st_mtime, UTC).replace(microsecond=0),
    )


class Volume:
    """The files of one server: ``root`` is ``storage.volumes_dir / <server id>``."""

    def __init__(self, root: Path, *, max_entries: int = 100_000) -> None:
        self.root = root
        self.max_entries = max_entries

    # -- handles -------------------------------------------------------------------------
    def open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("the server has no volume directory yet (is it installed?)") from None
        except OSError as exc:
            raise os_error(exc, "the volume root") from None

    def _parent(
        self,
        root_fd: int,
        path: str,
        *,
        create: bool = False,
        made: list[list[str]] | None = None,
    ) -> tuple[int, str, list[str]]:
        """``(handle of the parent directory, last name, all names)`` of a path that names an
        entry (the volume root itself is refused)."""
        names = split_path(path)
        if not names:
            raise BadRequest("the path names the volume root itself; name an entry in it")
        return walk_dir(root_fd, names[:-1], create=create, made=made), names[-1], names

    # -- listing -------------------------------------------------------------------------
    def _scan(self, dir_fd: int) -> tuple[list[tuple[str, os.stat_result]], int]:
        found: list[tuple[str, os.stat_result]] = []
        hidden = 0
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if len(found) + hidden >= self.max_entries:
                    raise PayloadTooLarge(
                        f"the directory holds more than {self.max_entries} entries "
                        "(files.max_entries)"
                    )
                if not encodable(entry.name):
                    hidden += 1
                    continue
                if is_temporary(entry.name):
                    continue
                try:
                    found.append((entry.name, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
        found.sort(key=lambda item: item[0])
        return found, hidden

    def names(self, path: str) -> FileNames:
        names = split_path(path)
        with closing_fd(self.open_root()) as root, closing_fd(walk_dir(root, names)) as fd:
            found, hidden = self._scan(fd)
        return FileNames(files=[name for name, _ in found], hidden=hidden)

    def detailed(self, path: str, offset: int, limit: int) -> FileEntries:
        names = split_path(path)
        with closing_fd(self.open_root()) as root, closing_fd(walk_dir(root, names)) as fd:
            found, hidden = self._scan(fd)
        page = found[offset : offset + limit]
        end = offset + len(page)
        return FileEntries(
            files=[_entry(names, name, info) for name, info in page],
            total=len(found),
            offset=offset,
            limit=limit,
            next_offset=end if end < len(found) else None,
            hidden=hidden,
        )

    def search(self, pattern: str, path: str, limit: int, max_visits: int) -> FileSearch:
        """Entries whose name matches ``pattern`` (a glob, or a plain substring), case-blind."""
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        glob = glob.lower()
        start = split_path(path)
        found: list[FileEntry] = []
        visits = 0
        truncated = False
        with closing_fd(self.open_root()) as root:
            stack: list[tuple[int, list[str]]] = [(walk_dir(root, start), start)]
            try:
                while stack:
                    fd, names = stack.pop()
                    with closing_fd(fd), os.scandir(fd) as entries:
                        for entry in entries:
                            visits += 1
                            if visits > max_visits or len(found) >= limit:
                                truncated = True
                                break
                            name = entry.name
                            if not encodable(name) or is_temporary(name):
                                continue
                            try:
                                info = entry.stat(follow_symlinks=False)
                            except FileNotFoundError:
                                continue
                            if fnmatch.fnmatchcase(name.lower(), glob):
                                found.append(_entry(names, name, info))
                            if stat.S_ISDIR(info.st_mode) and len(names) < _MAX_TREE_DEPTH:
                                try:
                                    stack.append(
                                        (open_dir(fd, name, join([*names, name])), [*names, name])
                                    )
                                except (BadRequest, NotFound, Conflict):
                                    continue  # swapped for a link meanwhile: not followed
                    if truncated:
                        break
            finally:
                for fd, _ in stack:
                    os.close(fd)
        found.sort(key=lambda e: e.path)
        return FileSearch(files=found, truncated=truncated)

    # -- reading -------------------------------------------------------------------------
    def open_file(self, path: str) -> tuple[int, int, str]:
        """``(handle, size, name)`` of a regular file to read; the caller closes it."""
        with closing_fd(self.open_root()) as root:
            parent, name, names = self._parent(root, path)
            with closing_fd(parent):
                fd = open_regular(parent, name, join(names))
        return fd, os.fstat(fd).st_size, name

    def read_all(self, path: str, limit: int) -> tuple[bytes, str]:
        fd, size, _ = self.open_file(path)
        with closing_fd(fd):
            if size > limit:
                raise PayloadTooLarge(
                    f"{join(split_path(path))}: {size} bytes is more than a command returns "
                    f"whole ({limit}, files.max_read_inline); download it with the streamed route"
                )
            chunks = []
            total = 0
            while chunk := os.read(fd, CHUNK):
                total += len(chunk)
                if total > limit:
                    raise PayloadTooLarge(f"{join(split_path(path))}: grew past {limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks), join(split_path(path))

    # -- writing -------------------------------------------------------------------------
    def begin_write(self, path: str) -> tuple[int, AtomicFile, str]:
        """The parent's handle and an :class:`AtomicFile` for ``path`` (parents are made);
        the caller writes, commits, closes the file and then the handle."""
        made: list[list[str]] = []
        with closing_fd(self.open_root()) as root:
            parent, name, names = self._parent(root, path, create=True, made=made)
        try:
            existing = lstat_at(parent, name)
            if existing is not None and not stat.S_ISREG(existing.st_mode):
                if stat.S_ISDIR(existing.st_mode):
                    raise BadRequest(f"{join(names)}: is a directory")
                raise Refused(f"{join(names)}: is {describe(existing.st_mode)}; not replaced")
            if existing is not None:
                check_regular(existing, join(names))
            undo = lambda: self._unmake(made)  # noqa: E731 - the parents this write made
            return parent, AtomicFile(parent, name, join(names), on_abort=undo), join(names)
        except BaseException:
            os.close(parent)
            self._unmake(made)
            raise

    def _unmake(self, made: list[list[str]]) -> None:
        """Remove the (still empty) directories a failed write made, deepest first."""
        if not made:
            return
        try:
            with closing_fd(self.open_root()) as root:
                for names in reversed(made):
                    with closing_fd(walk_dir(root, names[:-1])) as parent:
                        os.rmdir(names[-1], dir_fd=parent)
        except (OSError, AgentError):
            return  # not empty (the server wrote there meanwhile) or gone: left as it is

    def write(self, path: str, data: bytes) -> FileDone:
        parent, file, where = self.begin_write(path)
        with closing_fd(parent), file:
            file.write(data)
            file.commit(replace=True)
        return FileDone(path=where, size=file.size)

    def mkdir(self, root: str, name: str) -> FileDone:
        names = split_path(root) + split_path(name)
        if not names:
            raise BadRequest("name the folder to create")
        with closing_fd(self.open_root()) as root_fd:
            with closing_fd(walk_dir(root_fd, names[:-1], create=True)) as parent:
                try:
                    os.mkdir(names[-1], 0o755, dir_fd=parent)
                except OSError as exc:
                    raise os_error(exc, join(names)) from None
                try:
                    info = os.fstat(parent)
                    os.chown(
                        names[-1], info.st_uid, info.st_gid, dir_fd=parent, follow_symlinks=False
                    )
                except OSError:
                    pass
        return FileDone(path=join(names))

    def rename(self, source: str, target: str) -> FileDone:
        with closing_fd(self.open_root()) as root:
            src_dir, src_name, src_names = self._parent(root, source)
            with closing_fd(src_dir):
                if lstat_at(src_dir, src_name) is None:
                    raise NotFound(f"{join(src_names)}: no such file or directory")
                dst_dir, dst_name, dst_names = self._parent(root, target, create=True)
                with closing_fd(dst_dir):
                    if dst_names[: len(src_names)] == src_names and dst_names != src_names:
                        raise BadRequest(f"{join(src_names)} cannot move into itself")
                    if lstat_at(dst_dir, dst_name) is not None:
                        raise Conflict(f"{join(dst_names)}: already exists")
                    try:
                        os.rename(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
                    except OSError as exc:
                        raise os_error(exc, join(dst_names)) from None
        return FileDone(path=join(dst_names))

    def delete(self, root: str, files: list[str]) -> FileDone:
        base = split_path(root)
        targets = [base + split_path(item) for item in files]
        if any(not names for names in targets):
            raise BadRequest("the volume root itself cannot be deleted; name entries in it")
        with closing_fd(self.open_root()) as root_fd:
            # every target must exist before anything is removed (nothing half-applied)
            for names in targets:
                with closing_fd(walk_dir(root_fd, names[:-1])) as parent:
                    if lstat_at(parent, names[-1]) is None:
                        raise NotFound(f"{join(names)}: no such file or directory")
            for names in targets:
                with closing_fd(walk_dir(root_fd, names[:-1])) as parent:
                    info = lstat_at(parent, names[-1])
                    if info is None:
                        continue
                    try:
                        if stat.S_ISDIR(info.st_mode):
                            # rmtree by handles: never follows a link, even one planted meanwhile
                            shutil.rmtree(names[-1], dir_fd=parent)
                        else:
                            os.unlink(names[-1], dir_fd=parent)
                    except OSError as exc:
                        raise os_error(exc, join(names)) from None
        return FileDone(path=join(base))

    def chmod(self, path: str, mode: int) -> FileDone:
        with closing_fd(self.open_root()) as root:
            parent, name, names = self._parent(root, path)
            with closing_fd(parent):
                where = join(names)
                info = lstat_at(parent, name)
                if info is None:
                    raise NotFound(f"{where}: no such file or directory")
                if stat.S_ISDIR(info.st_mode):
                    fd = open_dir(parent, name, where)
                else:
                    fd = open_regular(parent, name, where)
                with closing_fd(fd):
                    after = os.fstat(fd)
                    if (after.st_dev, after.st_ino) != (info.st_dev, info.st_ino):
                        raise Conflict(f"{where}: changed while it was opened; try again")
                    os.fchmod(fd, mode)
        return FileDone(path=where)

    # -- copy ----------------------------------------------------------------------------
    def copy(self, source: str, destination: str, is_folder: bool) -> FileDone:
        with closing_fd(self.open_root()) as root:
            src_dir, src_name, src_names = self._parent(root, source)
            with closing_fd(src_dir):
                info = lstat_at(src_dir, src_name)
                if info is None:
                    raise NotFound(f"{join(src_names)}: no such file or directory")
                if stat.S_ISDIR(info.st_mode) != is_folder:
                    kind = "a folder" if stat.S_ISDIR(info.st_mode) else describe(info.st_mode)
                    raise BadRequest(
                        f"{join(src_names)} is {kind}; set is_folder to "
                        f"{str(stat.S_ISDIR(info.st_mode)).lower()}"
                    )
                dst_dir, dst_name, dst_names = self._parent(root, destination, create=True)
                with closing_fd(dst_dir):
                    if is_folder:
                        if dst_names[: len(src_names)] == src_names:
                            raise BadRequest(f"{join(src_names)} cannot be copied into itself")
                        with closing_fd(open_dir(src_dir, src_name, join(src_names))) as src:
                            try:
                                os.mkdir(dst_name, 0o755, dir_fd=dst_dir)
                            except OSError as exc:
                                raise os_error(exc, join(dst_names)) from None
                            try:
                                with closing_fd(
                                    open_dir(dst_dir, dst_name, join(dst_names))
                                ) as dst:
                                    os.fchmod(dst, stat.S_IMODE(info.st_mode) & 0o777)
                                    skipped = self._copy_tree(src, dst, 0)
                            except BaseException:
                                shutil.rmtree(dst_name, dir_fd=dst_dir, ignore_errors=True)
                                raise
                        return FileDone(path=join(dst_names), skipped=skipped)
                    with closing_fd(open_regular(src_dir, src_name, join(src_names))) as src:
                        with AtomicFile(dst_dir, dst_name, join(dst_names)) as out:
                            _pump(src, out)
                            out.commit(replace=False, mode=stat.S_IMODE(info.st_mode) & 0o777)
                        return FileDone(path=join(dst_names), size=out.size)

    def _copy_tree(self, src: int, dst: int, depth: int) -> int:
        """Copy the regular files and folders of ``src`` into ``dst``; the rest is skipped."""
        skipped = 0
        for name, info in _entries(src):
            if is_temporary(name):
                continue
            if stat.S_ISDIR(info.st_mode) and depth < _MAX_TREE_DEPTH:
                try:
                    child = open_dir(src, name, name)
                except (BadRequest, NotFound, Conflict):
                    skipped += 1
                    continue
                with closing_fd(child):
                    os.mkdir(name, 0o755, dir_fd=dst)
                    with closing_fd(open_dir(dst, name, name)) as out:
                        os.fchmod(out, stat.S_IMODE(info.st_mode) & 0o777)
                        skipped += self._copy_tree(child, out, depth + 1)
            elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                try:
                    fd = open_regular(src, name, name)
                except (BadRequest, NotFound, Conflict):
                    skipped += 1
                    continue
                with closing_fd(fd), AtomicFile(dst, name, name) as out:
                    _pump(fd, out)
                    out.commit(replace=False, mode=stat.S_IMODE(info.st_mode) & 0o777)
            else:
                skipped += 1  # links, devices, FIFOs, sockets, hard-linked files
        return skipped


def _pump(src: int, out: AtomicFile) -> None:
    while chunk := os.read(src, CHUNK):
        out.write(chunk)


def _entries(dir_fd: int) -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(dir_fd) as entries:
        listed = list(entries)
    for entry in listed:
        try:
            yield entry.name, entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
