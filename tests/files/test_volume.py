"""The file operations on a real directory, without Docker: every hostile input built for real.

Each refusal test also checks that the host file the input aimed at (``outside/secret.txt``,
beside the volume, never inside it) is untouched: same bytes, same mode, same inode.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lightd_agent.errors import AgentError, BadRequest, Conflict, NotFound, PayloadTooLarge
from lightd_agent.files.archive import ArchiveLimits, compress, decompress
from lightd_agent.files.volume import Volume
from lightd_agent.files.walker import Refused, split_path

SECRET = b"host secret, never to be read or changed\n"
LIMITS = ArchiveLimits(max_size=8 * 1024 * 1024, max_ratio=50, max_entries=1000)


@dataclass
class Host:
    volume: Volume
    root: Path
    outside: Path
    secret: Path

    def secret_untouched(self) -> None:
        assert self.secret.read_bytes() == SECRET
        assert stat.S_IMODE(self.secret.stat().st_mode) == 0o600
        assert sorted(p.name for p in self.outside.iterdir()) == ["secret.txt"]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    root = tmp_path / "volumes" / "srv"
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    h = Host(Volume(root), root, outside, secret)
    yield h
    h.secret_untouched()


def refused(kind: type[AgentError], call: object, *args: object) -> str:
    with pytest.raises(kind) as caught:
        call(*args)  # type: ignore[operator]
    assert 400 <= caught.value.status < 500
    return caught.value.message


# -- paths ---------------------------------------------------------------------------------
def test_paths_are_split_from_the_volume_root() -> None:
    assert split_path("/") == []
    assert split_path("") == []
    assert split_path("/a//b/./c/") == ["a", "b", "c"]
    for bad in ("../x", "/a/../../etc", "a/..", "a\x00b"):
        with pytest.raises(BadRequest):
            split_path(bad)


def test_dot_dot_and_absolute_paths_stay_in_the_volume(host: Host) -> None:
    message = refused(BadRequest, host.volume.read_all, "../outside/secret.txt", 1000)
    assert "'..'" in message
    refused(BadRequest, host.volume.write, "../outside/secret.txt", b"x")
    refused(BadRequest, host.volume.names, "/../..")
    # an absolute path is the volume's own: the host's file of that name is not reached
    refused(NotFound, host.volume.read_all, str(host.secret), 1000)
    host.volume.write(str(host.secret), b"mine")
    assert (host.root / str(host.secret).lstrip("/")).read_bytes() == b"mine"


# -- links ---------------------------------------------------------------------------------
def test_a_symlink_to_a_host_directory_is_never_followed(host: Host) -> None:
    (host.root / "escape").symlink_to(host.outside)
    v = host.volume
    for call, args in [
        (v.names, ("/escape",)),
        (v.detailed, ("/escape", 0, 10)),
        (v.read_all, ("/escape/secret.txt", 1000)),
        (v.write, ("/escape/secret.txt", b"owned")),
        (v.write, ("/escape/new.txt", b"owned")),
        (v.chmod, ("/escape/secret.txt", 0o777)),
        (v.mkdir, ("/escape", "sub")),
        (v.copy, ("/escape/secret.txt", "/copy.txt", False)),
        (v.copy, ("/escape", "/copied", True)),
        (v.rename, ("/escape/secret.txt", "/stolen.txt")),
        (v.delete, ("/escape", ["secret.txt"])),
    ]:
        message = refused(AgentError, call, *args)
        assert "symbolic link" in message or "is a symbolic link" in message or "folder" in message
    # the link itself is listed as a link, and deleting it removes only the link
    [entry] = v.detailed("/", 0, 10).files
    assert entry.is_symlink and not entry.is_dir
    assert v.search("secret", "/", 10, 1000).files == []
    v.delete("/", ["escape"])
    assert not (host.root / "escape").exists()


def test_a_symlink_to_a_host_file_is_never_read_or_written(host: Host) -> None:
    (host.root / "link.txt").symlink_to(host.secret)
    v = host.volume
    assert "symbolic link" in refused(Refused, v.read_all, "/link.txt", 1000)
    assert "symbolic link" in refused(Refused, v.write, "/link.txt", b"owned")
    refused(AgentError, v.chmod, "/link.txt", 0o777)
    refused(Refused, v.copy, "/link.txt", "/c.txt", False)
    assert (host.root / "link.txt").is_symlink()


def test_a_hardlink_to_a_host_file_is_never_read_or_written(host: Host) -> None:
    os.link(host.secret, host.root / "hard.txt")
    v = host.volume
    assert "hard links" in refused(Refused, v.read_all, "/hard.txt", 1000)
    assert "hard links" in refused(Refused, v.write, "/hard.txt", b"owned")
    assert "hard links" in refused(Refused, v.chmod, "/hard.txt", 0o777)
    refused(Refused, v.copy, "/hard.txt", "/c.txt", False)
    done = compress(v, ["/hard.txt"], "/out.tar.gz", "tar.gz", LIMITS)
    assert done.skipped == 1
    with tarfile.open(host.root / "out.tar.gz") as tar:
        assert tar.getnames() == []
    v.delete("/", ["hard.txt"])  # unlinks the volume's name only
    assert host.secret.stat().st_nlink == 1


def test_devices_fifos_and_sockets_are_never_opened(host: Host) -> None:
    os.mknod(host.root / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    os.mkfifo(host.root / "fifo")
    v = host.volume
    assert "device file" in refused(Refused, v.read_all, "/zero", 1000)
    assert "FIFO" in refused(Refused, v.read_all, "/fifo", 1000)  # and did not block
    refused(Refused, v.write, "/zero", b"x")
    refused(AgentError, v.chmod, "/zero", 0o600)
    refused(BadRequest, v.copy, "/fifo", "/f2", False)
    assert stat.S_ISCHR((host.root / "zero").lstat().st_mode)
    assert sorted(v.names("/").files) == ["fifo", "zero"]


def test_names_that_are_not_utf8_are_hidden_and_carried_along(host: Host) -> None:
    raw = os.fsencode(str(host.root)) + b"/bad-\xff-name"
    with open(raw, "wb") as handle:
        handle.write(b"x")
    (host.root / "good.txt").write_text("g")
    listing = host.volume.names("/")
    assert listing.files == ["good.txt"] and listing.hidden == 1
    detailed = host.volume.detailed("/", 0, 10)
    assert [e.name for e in detailed.files] == ["good.txt"] and detailed.hidden == 1


# -- ordinary work -------------------------------------------------------------------------
def test_write_read_copy_rename_chmod_delete(host: Host) -> None:
    v = host.volume
    assert v.write("/a/b/c.txt", b"hello").path == "/a/b/c.txt"
    assert v.read_all("/a/b/c.txt", 100) == (b"hello", "/a/b/c.txt")
    refused(PayloadTooLarge, v.read_all, "/a/b/c.txt", 3)
    assert v.copy("/a/b/c.txt", "/d.txt", False).size == 5
    refused(Conflict, v.copy, "/a/b/c.txt", "/d.txt", False)
    assert v.copy("/a", "/a2", True).path == "/a2"
    assert (host.root / "a2/b/c.txt").read_bytes() == b"hello"
    refused(BadRequest, v.copy, "/a", "/a/inner", True)
    assert v.rename("/d.txt", "/e/f.txt").path == "/e/f.txt"
    refused(Conflict, v.rename, "/a2", "/a")
    v.chmod("/e/f.txt", 0o600)
    assert stat.S_IMODE((host.root / "e/f.txt").stat().st_mode) == 0o600
    v.write("/e/f.txt", b"new")  # replacing keeps the mode
    assert stat.S_IMODE((host.root / "e/f.txt").stat().st_mode) == 0o600
    refused(Conflict, v.mkdir, "/", "a")
    v.mkdir("/x", "y/z")
    assert (host.root / "x/y/z").is_dir()
    refused(NotFound, v.delete, "/", ["a", "missing"])
    assert (host.root / "a").exists()  # nothing half-applied
    v.delete("/", ["a", "a2", "e"])
    assert sorted(v.names("/").files) == ["x"]
    assert [".lightd" in name for name in os.listdir(host.root)] == [False]
    # a write that fails leaves neither its temporary file nor the folders it made
    parent, file, _ = v.begin_write("/made/for/it.txt")
    file.write(b"half")
    file.close()
    os.close(parent)
    assert sorted(v.names("/").files) == ["x"]


def test_listing_pages_and_search_are_bounded(host: Host) -> None:
    for i in range(25):
        (host.root / f"f{i:02}.log").write_text(str(i))
    v = host.volume
    page = v.detailed("/", 10, 10)
    assert [e.name for e in page.files] == [f"f{i:02}.log" for i in range(10, 20)]
    assert (page.total, page.next_offset) == (25, 20)
    assert v.detailed("/", 20, 10).next_offset is None
    found = v.search("F1", "/", 5, 1000)
    assert len(found.files) == 5 and found.truncated
    assert v.search("*.log", "/", 100, 1000).truncated is False
    small = Volume(host.root, max_entries=10)
    refused(PayloadTooLarge, small.names, "/")


# -- archives ------------------------------------------------------------------------------
def _tar(host: Host, name: str, members: list[tarfile.TarInfo], data: bytes = b"") -> None:
    with tarfile.open(host.root / name, "w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    return info


def _untouched_volume(host: Host, *expected: str) -> None:
    assert sorted(os.listdir(host.root)) == sorted(expected)


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_member("../../outside/secret.txt", size=5), "zip-slip"),
        (_member("ok/../../../outside/secret.txt", size=5), "zip-slip"),
        ("absolute", "absolute"),
        (_member("link", tarfile.SYMTYPE, "/"), "links are refused"),
        ("hardlink", "links are refused"),
        (_member("dev", tarfile.CHRTYPE), "special"),
        (_member("fifo", tarfile.FIFOTYPE), "special"),
    ],
)
def test_hostile_tar_members_are_refused(host: Host, member: object, words: str) -> None:
    if member == "absolute":
        member = _member(str(host.secret), size=5)
    elif member == "hardlink":
        member = _member("hard", tarfile.LNKTYPE, str(host.secret))
    assert isinstance(member, tarfile.TarInfo)
    first = _member("first.txt", size=5)
    _tar(host, "evil.tar.gz", [first, member], b"owned")
    message = refused(Refused, decompress, host.volume, "/", "evil.tar.gz", LIMITS)
    assert words in message
    _untouched_volume(host, "evil.tar.gz")  # first.txt, written before, was cleaned up


def test_zip_slip_and_zip_symlinks_are_refused(host: Host) -> None:
    with zipfile.ZipFile(host.root / "slip.zip", "w") as z:
        z.writestr("fine.txt", "fine")
        z.writestr("../../outside/secret.txt", "owned")
    assert "zip-slip" in refused(Refused, decompress, host.volume, "/", "slip.zip", LIMITS)
    with zipfile.ZipFile(host.root / "link.zip", "w") as z:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, str(host.outside))
    assert "links" in refused(Refused, decompress, host.volume, "/", "link.zip", LIMITS)
    _untouched_volume(host, "slip.zip", "link.zip")


def test_archive_bombs_stop_and_leave_nothing(host: Host) -> None:
    with zipfile.ZipFile(host.root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (20 * 1024 * 1024))
    assert "bytes" in refused(PayloadTooLarge, decompress, host.volume, "/", "bomb.zip", LIMITS)
    with tarfile.open(host.root / "bomb.tar.gz", "w:gz") as tar:
        info = _member("zeros.bin", size=6 * 1024 * 1024)
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    message = refused(PayloadTooLarge, decompress, host.volume, "/", "bomb.tar.gz", LIMITS)
    assert "archive bomb" in message
    many = ArchiveLimits(max_size=LIMITS.max_size, max_ratio=50, max_entries=3)
    _tar(host, "many.tar.gz", [_member(f"f{i}", size=1) for i in range(5)], b"x")
    assert "members" in refused(PayloadTooLarge, decompress, host.volume, "/", "many.tar.gz", many)
    _untouched_volume(host, "bomb.zip", "bomb.tar.gz", "many.tar.gz")


def test_compress_and_decompress_round_trip_without_following_links(host: Host) -> None:
    v = host.volume
    v.write("/world/level.dat", os.urandom(5000))
    v.write("/world/region/r.0.mca", b"region")
    (host.root / "world" / "escape").symlink_to(host.outside)
    (host.root / "world" / "secret-link").symlink_to(host.secret)
    for fmt, out in (("tar.gz", "/w.tar.gz"), ("zip", "/w.zip")):
        done = compress(v, ["/world"], out, fmt, LIMITS)  # type: ignore[arg-type]
        assert done.skipped == 2
        refused(Conflict, compress, v, ["/world"], out, fmt, LIMITS)
        v.mkdir("/", f"into-{fmt}")
        v.copy(out, f"/into-{fmt}{out}", False)
        decompress(v, f"/into-{fmt}", out.lstrip("/"), LIMITS)
        base = host.root / f"into-{fmt}" / "world"
        assert (base / "level.dat").read_bytes() == (host.root / "world/level.dat").read_bytes()
        assert (base / "region/r.0.mca").read_bytes() == b"region"
        assert sorted(os.listdir(base)) == ["level.dat", "region"]
    # extracting again merges: files replaced, folders kept
    decompress(v, "/into-zip", "w.zip", LIMITS)
    (host.root / "into-zip" / "world" / "level.dat").unlink()
    (host.root / "into-zip" / "world" / "level.dat").mkdir()
    assert "Nothing was extracted" in refused(Conflict, decompress, v, "/into-zip", "w.zip", LIMITS)
    assert not any(name.startswith(".lightd") for name in os.listdir(host.root / "into-zip"))
