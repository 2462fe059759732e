"""Compress and decompress inside a volume, never reaching outside it.

**Decompress** (tar, tar.gz/bz2/xz, zip; the kind is read from the file, not its name) extracts
into a new hidden staging folder (``.lightd-tmp-<random>``) beside the target, through the same
handle walker and :class:`~lightd_agent.files.writer.AtomicFile` as every other write; only
when the whole archive extracted cleanly is the staging folder merged into the target (files
replace files, folders merge; a file where the archive has a folder, or the other way round, is
a 409 found before anything moves). Any refusal removes the staging folder: nothing is left
half-extracted. Refused (422), the whole archive:

- a member whose name is absolute, holds ``..``, a NUL, or is not valid UTF-8 (zip-slip);
- any link member (symbolic or hard), whatever it points at: a link inside a server's volume
  is the server's own business, but one an archive brings is how archives climb out;
- device, FIFO and other special members.

Bombs are bounded: more than ``files.archive_max_entries`` members, more than
``files.archive_max_size`` bytes written, or, past the first MiB, more than
``files.archive_max_ratio`` bytes written per byte of archive stop the extraction with 413 (the
zip's declared sizes are checked first; the bytes actually written are counted either way).

**Compress** walks its sources by handle: symbolic links, special files and files with more
than one hard link are left out (counted in ``skipped``), never followed. The archive is
written to a temporary file and linked in under ``output`` (409 if that exists).

Over 400 lines: compress and decompress share the bounds and the walker; compress (the writers
at the end) is the candidate to split off.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from lightd_agent.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from lightd_agent.files.volume import CHUNK, Volume
from lightd_agent.files.walker import (
    Refused,
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
from lightd_agent.files.writer import TMP_PREFIX, AtomicFile, is_temporary
from lightd_shared.files import ArchiveFormat, FileDone
from lightd_shared.wire import encodable

__all__ = ["ArchiveLimits", "compress", "decompress"]

_RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_size: int
    max_ratio: int
    max_entries: int


class _Budget:
    """Counts bytes written against the size cap and the ratio to the archive's size."""

    def __init__(self, limits: ArchiveLimits, archive_size: int) -> None:
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.written = 0
        self.entries = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise PayloadTooLarge(
                f"the archive holds more than {self.limits.max_entries} members "
                "(files.archive_max_entries); nothing was extracted"
            )

    def add(self, count: int) -> None:
        self.written += count
        if self.written > self.limits.max_size:
            raise PayloadTooLarge(
                f"the archive unpacks to more than {self.limits.max_size} bytes "
                "(files.archive_max_size); nothing was extracted"
            )
        if self.written > _RATIO_FLOOR and self.written > self.limits.max_ratio * self.archive_size:
            raise PayloadTooLarge(
                f"the archive unpacks to more than {self.limits.max_ratio} times its size "
                "(files.archive_max_ratio): an archive bomb; nothing was extracted"
            )


def _member_names(name: str) -> list[str]:
    """The names of an archive member's path; anything that could climb out is refused."""
    shown = name[:200]
    if not encodable(name):
        raise Refused(f"archive member {shown!r}: its name is not valid UTF-8")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Refused(f"archive member {shown!r}: absolute names are refused (zip-slip)")
    try:
        names = split_path(name)
    except BadRequest:
        raise Refused(f"archive member {shown!r}: climbs out with '..' (zip-slip)") from None
    if any(is_temporary(part) for part in names):
        raise Refused(f"archive member {shown!r}: the name is reserved by the agent")
    return names


# -- decompress -------------------------------------------------------------------------------
def decompress(volume: Volume, root: str, file: str, limits: ArchiveLimits) -> FileDone:
    target_names = split_path(root)
    with closing_fd(volume.open_root()) as root_fd:
        file_names = target_names + split_path(file)
        if len(file_names) == len(target_names):
            raise BadRequest("name the archive to decompress")
        with closing_fd(walk_dir(root_fd, file_names[:-1])) as parent:
            archive_fd = open_regular(parent, file_names[-1], join(file_names))
        with (
            os.fdopen(archive_fd, "rb") as archive,
            closing_fd(walk_dir(root_fd, target_names)) as target,
        ):
            size = os.fstat(archive.fileno()).st_size
            budget = _Budget(limits, size)
            staging = TMP_PREFIX + os.urandom(8).hex()
            try:
                os.mkdir(staging, 0o700, dir_fd=target)
            except OSError as exc:
                raise os_error(exc, join(target_names)) from None
            try:
                with closing_fd(open_dir(target, staging, staging)) as stage:
                    head = archive.read(4)
                    archive.seek(0)
                    if head.startswith(b"PK"):
                        _unzip(archive, stage, budget)
                    else:
                        _untar(archive, stage, budget)
                    _check_merge(stage, target, target_names)
                    _merge(stage, target)
            finally:
                shutil.rmtree(staging, dir_fd=target, ignore_errors=True)
    return FileDone(path=join(target_names), size=budget.written)


def _write_member(
    stage: int, names: list[str], mode: int, read: Callable[[int], bytes], budget: _Budget
) -> None:
    with closing_fd(walk_dir(stage, names[:-1], create=True)) as parent:
        with AtomicFile(parent, names[-1], join(names)) as out:
            while chunk := read(CHUNK):
                budget.add(len(chunk))
                out.write(chunk)
            out.commit(replace=True, mode=mode & 0o777 or 0o644)


def _unzip(archive: io.BufferedReader, stage: int, budget: _Budget) -> None:
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadRequest(f"not a readable zip archive: {exc}") from None
    with zipped:
        infos = zipped.infolist()
        if len(infos) > budget.limits.max_entries:
            budget.entries = len(infos) - 1
            budget.entry()
        declared = sum(info.file_size for info in infos)
        if declared > budget.limits.max_size:
            budget.add(declared)
        for info in infos:
            names = _member_names(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise Refused(f"archive member {info.filename[:200]!r}: links are refused")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise Refused(
                    f"archive member {info.filename[:200]!r}: is {describe(kind)}; refused"
                )
            budget.entry()
            if not names:
                continue
            if info.is_dir() or kind == stat.S_IFDIR:
                os.close(walk_dir(stage, names, create=True))
                continue
            mode = (info.external_attr >> 16) & 0o777
            try:
                with zipped.open(info) as member:
                    _write_member(stage, names, mode, member.read, budget)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
                raise BadRequest(f"archive member {info.filename[:200]!r}: {exc}") from None
            except NotImplementedError as exc:
                raise BadRequest(f"archive member {info.filename[:200]!r}: {exc}") from None


def _untar(archive: io.BufferedReader, stage: int, budget: _Budget) -> None:
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadRequest(f"not a readable tar or zip archive: {exc}") from None
    with tar:
        try:
            for member in tar:
                budget.entry()
                names = _member_names(member.name)
                if member.issym() or member.islnk():
                    raise Refused(
                        f"archive member {member.name[:200]!r}: links are refused "
                        f"(it points at {member.linkname[:200]!r})"
                    )
                if member.isdir():
                    if names:
                        os.close(walk_dir(stage, names, create=True))
                    continue
                if not member.isfile():
                    raise Refused(
                        f"archive member {member.name[:200]!r}: device, FIFO and other special "
                        "members are refused"
                    )
                if not names:
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - isfile() members always have data
                    continue
                with extracted:
                    _write_member(stage, names, member.mode, extracted.read, budget)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.errno:
                raise os_error(exc, "decompress") from None
            raise BadRequest(f"the archive is damaged: {exc}") from None


def _check_merge(stage: int, target: int, names: list[str]) -> None:
    """409 before anything moves, if an entry of the archive meets one of another kind."""
    for name, info in _listing(stage):
        existing = lstat_at(target, name)
        where = join([*names, name])
        if existing is None:
            continue
        if stat.S_ISDIR(info.st_mode) and stat.S_ISDIR(existing.st_mode):
            with (
                closing_fd(open_dir(stage, name, where)) as a,
                closing_fd(open_dir(target, name, where)) as b,
            ):
                _check_merge(a, b, [*names, name])
        elif not (stat.S_ISREG(info.st_mode) and stat.S_ISREG(existing.st_mode)):
            raise Conflict(
                f"{where}: exists as {describe(existing.st_mode)}; the archive holds "
                f"{describe(info.st_mode)} there. Nothing was extracted"
            )


def _merge(stage: int, target: int) -> None:
    for name, info in _listing(stage):
        existing = lstat_at(target, name)
        if existing is not None and stat.S_ISDIR(info.st_mode) and stat.S_ISDIR(existing.st_mode):
            with (
                closing_fd(open_dir(stage, name, name)) as a,
                closing_fd(open_dir(target, name, name)) as b,
            ):
                _merge(a, b)
            continue
        try:
            os.rename(name, name, src_dir_fd=stage, dst_dir_fd=target)
        except OSError as exc:
            raise os_error(exc, name) from None


def _listing(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    with os.scandir(dir_fd) as entries:
        return [(e.name, e.stat(follow_symlinks=False)) for e in entries]


# -- compress ---------------------------------------------------------------------------------
class _Sink(io.RawIOBase):
    """A write-only stream into an :class:`AtomicFile`, bounded by the archive size cap."""

    def __init__(self, out: AtomicFile, limit: int) -> None:
        self.out = out
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        raw = bytes(data)
        if self.out.size + len(raw) > self.limit:
            raise PayloadTooLarge(
                f"the archive would be larger than {self.limit} bytes (files.archive_max_size)"
            )
        self.out.write(raw)
        return len(raw)


def compress(
    volume: Volume, sources: list[str], output: str, fmt: ArchiveFormat, limits: ArchiveLimits
) -> FileDone:
    source_names = [split_path(source) for source in sources]
    if any(not names for names in source_names):
        raise BadRequest("a source names the volume root; name the entries to archive")
    with closing_fd(volume.open_root()) as root:
        out_names = split_path(output)
        if not out_names:
            raise BadRequest("name the archive to write")
        with closing_fd(walk_dir(root, out_names[:-1], create=True)) as out_dir:
            if lstat_at(out_dir, out_names[-1]) is not None:
                raise Conflict(f"{join(out_names)}: already exists")
            with AtomicFile(out_dir, out_names[-1], join(out_names)) as out:
                sink = _Sink(out, limits.max_size)
                writer = _TarWriter(sink) if fmt == "tar.gz" else _ZipWriter(sink)
                skipped = 0
                with writer:
                    for names in source_names:
                        with closing_fd(walk_dir(root, names[:-1])) as parent:
                            info = lstat_at(parent, names[-1])
                            if info is None:
                                raise NotFound(f"{join(names)}: no such file or directory")
                            skipped += _add(writer, parent, names[-1], names[-1], info, 0)
                out.commit(replace=False)
    return FileDone(path=join(out_names), size=out.size, skipped=skipped)


class _TarWriter:
    def __init__(self, sink: _Sink) -> None:
        self.tar = tarfile.open(fileobj=sink, mode="w|gz")

    def __enter__(self) -> _TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tar.close()

    def directory(self, arcname: str, info: os.stat_result) -> None:
        member = tarfile.TarInfo(arcname)
        member.type = tarfile.DIRTYPE
        member.mode = stat.S_IMODE(info.st_mode) & 0o777
        member.mtime = int(info.st_mtime)
        self.tar.addfile(member)

    def file(self, arcname: str, info: os.stat_result, fd: int) -> None:
        member = tarfile.TarInfo(arcname)
        member.size = os.fstat(fd).st_size
        member.mode = stat.S_IMODE(info.st_mode) & 0o777
        member.mtime = int(info.st_mtime)
        with os.fdopen(os.dup(fd), "rb") as handle:
            self.tar.addfile(member, handle)


class _ZipWriter:
    def __init__(self, sink: _Sink) -> None:
        self.zip = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED)

    def __enter__(self) -> _ZipWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def _info(self, arcname: str, info: os.stat_result) -> zipfile.ZipInfo:
        stamp = time.gmtime(max(info.st_mtime, 315532800))[:6]
        member = zipfile.ZipInfo(arcname, date_time=stamp)
        member.external_attr = (
            stat.S_IFMT(info.st_mode) | (stat.S_IMODE(info.st_mode) & 0o777)
        ) << 16
        member.compress_type = zipfile.ZIP_DEFLATED
        return member

    def directory(self, arcname: str, info: os.stat_result) -> None:
        self.zip.writestr(self._info(arcname + "/", info), b"")

    def file(self, arcname: str, info: os.stat_result, fd: int) -> None:
        with self.zip.open(self._info(arcname, info), "w", force_zip64=True) as out:
            while chunk := os.read(fd, CHUNK):
                out.write(chunk)


def _add(
    writer: _TarWriter | _ZipWriter,
    parent: int,
    name: str,
    arcname: str,
    info: os.stat_result,
    depth: int,
) -> int:
    """Add one entry (a folder with all it holds); the count of entries left out."""
    if is_temporary(name) or not encodable(name):
        return 1
    if stat.S_ISDIR(info.st_mode) and depth < 128:
        try:
            fd = open_dir(parent, name, arcname)
        except (BadRequest, NotFound, Conflict):
            return 1
        skipped = 0
        with closing_fd(fd):
            writer.directory(arcname, info)
            for child, child_info in _listing(fd):
                skipped += _add(writer, fd, child, f"{arcname}/{child}", child_info, depth + 1)
        return skipped
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        try:
            fd = open_regular(parent, name, arcname)
        except (BadRequest, NotFound, Conflict):
            return 1
        with closing_fd(fd):
            writer.file(arcname, os.fstat(fd), fd)
        return 0
    return 1  # links, devices, FIFOs, sockets, hard-linked files
