"""Hostile archives and volumes, on the real filesystem: nothing outside the volume is read,
written or followed, and a refused archive leaves nothing behind but what the caller drops.

Also the journal's recovery, phase by phase: after a cut at any phase the volume holds the old
content or the new one, whole; and a restore into a root that is a mount point (a loop-mounted
ext4 image), which is never renamed and whose ``lost+found`` is left alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lightd_agent.backups.archive import STAGING, ignore_spec, write_archive
from lightd_agent.backups.extract import ArchiveRefused, extract_archive
from lightd_agent.backups.swap import Journal, _swap_in, _swap_out, finish, prepare, recover
from tests.backups.volume import Snapshot, fill, snapshot


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = buffer.getvalue()
    return raw, hashlib.sha256(raw).hexdigest()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


HOSTILE: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "dot-dot": [(_member("../escape"), b"x")],
    "absolute": [(_member("/tmp/escape"), b"x")],
    "nested-dot-dot": [(_member("a/../../escape"), b"x")],
    "symlink-out": [(_member("link", tarfile.SYMTYPE, "../../etc"), None)],
    "symlink-absolute": [(_member("link", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "through-symlink": [
        (_member("a", tarfile.SYMTYPE, "."), None),
        (_member("a/b", tarfile.SYMTYPE, ".."), None),
    ],
    "write-through-symlink": [
        (_member("d", tarfile.SYMTYPE, "sub"), None),
        (_member("d/x"), b"x"),
    ],
    "hardlink-out": [(_member("h", tarfile.LNKTYPE, "../outside"), None)],
    "device": [(_member("dev", tarfile.CHRTYPE), None)],
    "fifo": [(_member("fifo", tarfile.FIFOTYPE), None)],
    "staging-name": [(_member(f"{STAGING}/x"), b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    dest = tmp_path / "volume" / "new"
    dest.mkdir(parents=True)
    raw, checksum = _tar(HOSTILE[case])
    with pytest.raises(ArchiveRefused):
        extract_archive(io.BytesIO(raw), dest, checksum)
    assert outside.read_text() == "untouched"
    assert not (tmp_path / "escape").exists() and not (tmp_path / "volume" / "escape").exists()


def test_the_writer_never_follows_links_out_nor_reads_devices(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    root = tmp_path / "vol"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    (root / "out").symlink_to(secret)
    (root / "up").symlink_to("../secret")
    (root / "dir-out").symlink_to(tmp_path)
    os.mkfifo(root / "pipe")
    os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
    (root / STAGING).mkdir()
    sink = io.BytesIO()
    stats = write_archive(root, sink, ignore_spec([]))
    with tarfile.open(fileobj=io.BytesIO(sink.getvalue()), mode="r:gz") as tar:
        names = tar.getnames()
        contents = b"".join(
            f.read() for m in tar.getmembers() if m.isreg() and (f := tar.extractfile(m))
        )
    assert names == ["ok.txt"]
    assert b"host secret" not in contents
    assert sorted(s.split(" ")[0] for s in stats.skipped) == [
        "dir-out",
        "null",
        "out",
        "pipe",
        "up",
    ]
    assert stats.checksum == hashlib.sha256(sink.getvalue()).hexdigest()


def _volumes(tmp_path: Path) -> tuple[Path, Snapshot, Snapshot, Journal]:
    root = tmp_path / "volume"
    root.mkdir()
    fill(root, seed="old")
    old = snapshot(root)
    source = tmp_path / "source"
    source.mkdir()
    fill(source, seed="new")
    (source / "only-new").write_text("new")
    new = snapshot(source)
    journal = Journal(path=tmp_path / "state" / "v.json", server="v", backup="b", root=str(root))
    staged = prepare(journal)
    for name in os.listdir(source):
        shutil.move(str(source / name), staged / name)
    return root, old, new, journal


@pytest.mark.parametrize("cut", ["extracting", "swap-out-half", "swap-in-half", "cleanup"])
def test_recovery_leaves_old_or_new_whole(tmp_path: Path, cut: str) -> None:
    root, old, new, journal = _volumes(tmp_path)
    if cut == "swap-out-half":
        journal.write("swap-out")
        first = sorted(n for n in os.listdir(root) if n != STAGING)[:2]
        for name in first:
            os.rename(root / name, root / STAGING / "old" / name)
    elif cut == "swap-in-half":
        journal.write("swap-out")
        _swap_out(root)
        journal.write("swap-in")
        first = sorted(os.listdir(root / STAGING / "new"))[:2]
        for name in first:
            os.rename(root / STAGING / "new" / name, root / name)
    elif cut == "cleanup":
        journal.write("swap-out")
        _swap_out(root)
        journal.write("swap-in")
        _swap_in(root)
        journal.write("cleanup")
    holds = recover(Journal.read(journal.path))
    assert holds == ("old" if cut == "extracting" else "new")
    assert snapshot(root) == (old if holds == "old" else new)
    assert not journal.path.exists()


@pytest.fixture
def mounted_root(tmp_path: Path) -> Iterator[Path]:
    """A volume root that is a mount point: a loop-mounted ext4 image (as a disk quota makes)."""
    image = tmp_path / "volume.img"
    root = tmp_path / "mnt"
    root.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(root)], check=True)
    try:
        assert os.path.ismount(root)
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_restore_into_a_root_that_is_a_mount_point(mounted_root: Path) -> None:
    root = mounted_root
    fill(root, seed="backed-up")
    lost = os.stat(root / "lost+found")
    wanted = snapshot(root)
    archive = io.BytesIO()
    stats = write_archive(root, archive, ignore_spec([]))
    with tarfile.open(fileobj=io.BytesIO(archive.getvalue()), mode="r:gz") as tar:
        assert not any(n.startswith("lost+found") for n in tar.getnames())

    (root / "server.properties").write_text("changed")
    (root / "extra").mkdir()
    journal = Journal(path=root.parent / "state" / "m.json", server="m", backup="b", root=str(root))
    new = prepare(journal)
    extract_archive(io.BytesIO(archive.getvalue()), new, stats.checksum)
    finish(journal)

    assert os.path.ismount(root)  # the root itself was never renamed
    assert snapshot(root) == wanted
    assert os.stat(root / "lost+found").st_ino == lost.st_ino  # the filesystem's own, untouched
    assert not journal.path.exists()
