"""Loop-mounted disk images made by tests: checked for, and every one released after the test.

The machine is shared: a test that leaves a mount or a loop device behind leaves it for every
other engineer. :func:`release_disks` unmounts everything mounted below a test's directory and
waits until no loop device is backed by an image below it (detaching what the kernel keeps),
even after a failure; :func:`require_loop` fails (never skips) where loop mounts cannot work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["loop_images", "mounts_below", "release_disks", "require_loop"]


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def mounts_below(base: Path) -> list[Path]:
    """Mount points at or below ``base`` (deepest first)."""
    root = str(base.resolve())
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            point = _unescape(line.split()[4])
            if point == root or point.startswith(root + "/"):
                points.append(Path(point))
    return sorted(set(points), key=lambda p: len(p.parts), reverse=True)


def loop_images(base: Path) -> dict[str, str]:
    """Loop device -> backing file, for the files at or below ``base``."""
    root = str(base.resolve())
    found = {}
    for entry in Path("/sys/block").glob("loop*"):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(root + "/"):
            found[f"/dev/{entry.name}"] = backing
    return found


def release_disks(base: Path, timeout: float = 20.0) -> None:
    """Unmount every mount below ``base`` and see every loop device of its images gone."""
    for point in mounts_below(base):
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:  # busy: detach it from the tree now, freed once let go
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    deadline = time.monotonic() + timeout
    while loop_images(base) and time.monotonic() < deadline:
        time.sleep(0.05)
    for device in loop_images(base):
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
    left = mounts_below(base)
    assert not left, f"mounts left behind below {base}: {left}"


def require_loop() -> None:
    """Fail (never skip) unless this host can loop-mount ext4 images: root and the tools."""
    missing = [
        tool
        for tool in ("mkfs.ext4", "e2fsck", "resize2fs", "mount", "umount", "losetup", "fallocate")
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None
    ]
    assert not missing, (
        f"the disk quota tests need {', '.join(missing)}: apt-get install e2fsprogs mount "
        "util-linux (.ci/run installs them)"
    )
    assert os.geteuid() == 0, "the disk quota tests need root (loop mounts)"
    assert Path("/dev/loop-control").exists(), "the disk quota tests need loop devices"
