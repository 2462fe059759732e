"""Disk images as ext4 files on loop devices: ``disks/<id>.img`` mounted at ``volumes/<id>``.

The tools are the system's own (e2fsprogs, util-linux), each run with a bounded timeout:

    make      fallocate -l SIZE <id>.img.new; mkfs.ext4 -q -F -m 0; rename to <id>.img
    mount     e2fsck -p (journal replay, repairs it can make alone); mount -o loop,nodev,nosuid
    grow      online:  fallocate; losetup -c; resize2fs /dev/loopN        (needs CAP_SYS_RESOURCE)
              offline: umount; fallocate; e2fsck -f -p; resize2fs <img>; mount
    shrink    umount; e2fsck -f -p; resize2fs <img> SIZE; truncate -s SIZE; mount
    remove    umount; wait for the loop device to go; delete the image

``-m 0``: no blocks kept back for root, so every process in the container gets the same limit.
``fallocate`` (not a sparse file): the space the limit promises is taken on the host when the
image is made, so a full host disk fails the create, never the server's writes later.

After ``umount`` the loop device can live on for a while: the kernel detaches it when the last
user of the filesystem lets go, and another mount namespace (a container being set up at that
moment) may hold it. Nothing offline (``e2fsck``, ``resize2fs``, delete) touches an image while
a loop device still backs it; :meth:`LoopExt4._wait_detached` waits a bounded time for that.

Over 400 lines: one idea, an image's whole life on the system's tools (make, check, mount,
grow, shrink, remove, and the probe that tries them once); most of the length is the error
messages each tool's failure gets. The mount-table readers could move to a module of their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from lightd_agent.disks.base import DiskError, DiskImages, Probe, Usage

__all__ = ["LoopExt4"]

log = logging.getLogger(__name__)

_PACKAGES = {
    "fallocate": "util-linux",
    "truncate": "coreutils",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "resize2fs": "e2fsprogs",
    "mount": "mount",
    "umount": "mount",
    "losetup": "mount",
}
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROBE_SIZE = 8 * 1024 * 1024
_DETACH_WAIT = 10.0


def _mountinfo_unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def mount_source(point: Path) -> str | None:
    """The device mounted at ``point`` (the last mount there), from ``/proc/self/mountinfo``
    (which names paths with their symlinks resolved)."""
    wanted = os.path.realpath(point)
    source: str | None = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            fields = line.split()
            if len(fields) < 10 or "-" not in fields:
                continue
            dash = fields.index("-")
            if _mountinfo_unescape(fields[4]) == wanted and len(fields) > dash + 2:
                source = _mountinfo_unescape(fields[dash + 2])
    return source


def loop_devices(image: Path) -> list[str]:
    """The loop devices backed by ``image`` (``/sys/block/loop*/loop/backing_file``, a path with
    its symlinks resolved)."""
    wanted = os.path.realpath(image)
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing == wanted:
            found.append(f"/dev/{entry.name}")
    return sorted(found)


class LoopExt4(DiskImages):
    """ext4 image files under ``disks_dir``, loop-mounted at ``volumes_dir/<id>``."""

    def __init__(
        self,
        disks_dir: Path,
        volumes_dir: Path,
        *,
        timeout: float,
        search_path: str | None = None,
    ) -> None:
        self.disks_dir = Path(os.path.abspath(disks_dir))
        self.volumes_dir = Path(os.path.abspath(volumes_dir))
        self.timeout = timeout
        self.search_path = search_path

    # -- paths and facts ----------------------------------------------------------------
    def image(self, server: str) -> Path:
        return self.disks_dir / f"{server}.img"

    def root(self, server: str) -> Path:
        return self.volumes_dir / server

    def exists(self, server: str) -> bool:
        return self.image(server).is_file()

    def _device(self, server: str) -> str | None:
        """The loop device of this server's image mounted at its root, if that is what is."""
        source = mount_source(self.root(server))
        if source is None:
            return None
        return source if source in loop_devices(self.image(server)) else None

    def mounted(self, server: str) -> bool:
        return self._device(server) is not None

    # -- running the tools --------------------------------------------------------------
    def _tool(self, name: str) -> str:
        path = self.search_path
        if path is None:
            path = os.environ.get("PATH", "") + os.pathsep + _SYSTEM_PATH
        found = shutil.which(name, path=path)
        if found is None:
            raise DiskError(
                f"{name} is not installed on this host (install the {_PACKAGES[name]} package)"
            )
        return found

    def _run(self, what: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self._tool(name), *args]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                env={"PATH": _SYSTEM_PATH, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise DiskError(
                f"{what}: {name} did not finish within {self.timeout:g}s (disks.tool_timeout)"
            ) from None
        return done

    def _check(self, what: str, name: str, *args: str) -> str:
        done = self._run(what, name, *args)
        if done.returncode != 0:
            raise DiskError(f"{what}: {name} failed (exit {done.returncode}): {_said(done)}")
        return done.stdout

    def _allocate(self, image: Path, size: int) -> None:
        done = self._run("reserving the disk image", "fallocate", "-l", str(size), str(image))
        if done.returncode == 0:
            return
        said = _said(done)
        if "not supported" in said.lower():  # a host filesystem without fallocate
            self._check("sizing the disk image", "truncate", "-s", str(size), str(image))
            return
        raise DiskError(
            f"cannot reserve {size // (1024 * 1024)} MB for the disk image {image} on the host "
            f"({said}); free space on the host or choose a smaller limits.disk"
        )

    def _fsck(self, image: Path, *, force: bool) -> None:
        args = ["-f", "-p", str(image)] if force else ["-p", str(image)]
        done = self._run(f"checking the disk image {image}", "e2fsck", *args)
        if done.returncode >= 4:  # 1: errors fixed; 2: fixed, "reboot"; 4+: not fixed
            raise DiskError(
                f"the disk image {image} has errors e2fsck cannot fix by itself (exit "
                f"{done.returncode}): {_said(done)}; repair it by hand with `e2fsck -f {image}`"
            )

    def _wait_detached(self, image: Path) -> bool:
        """Wait (bounded) until no loop device backs ``image``; whether none does."""
        deadline = time.monotonic() + _DETACH_WAIT
        while loop_devices(image):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _mount(self, server: str) -> None:
        image, root = self.image(server), self.root(server)
        root.mkdir(parents=True, exist_ok=True)
        if self.mounted(server):
            return
        if mount_source(root) is not None:
            raise DiskError(
                f"something else is mounted at {root}, the volume root of server {server!r}; "
                "unmount it, then retry"
            )
        if any(root.iterdir()):
            raise DiskError(
                f"the volume root {root} of server {server!r} holds files outside its disk "
                "image; mounting the image would hide them: move them away, then retry"
            )
        if not loop_devices(image):  # in use elsewhere: mount reuses that device, no fsck
            self._fsck(image, force=False)
        self._check(
            f"mounting the disk image {image}",
            "mount",
            "-t",
            "ext4",
            "-o",
            "loop,nodev,nosuid",
            str(image),
            str(root),
        )
        if not self.mounted(server):
            raise DiskError(f"mounted {image} at {root}, but the mount is not there")

    def _unmount(self, server: str) -> None:
        root = self.root(server)
        if self.mounted(server):
            self._check(f"unmounting the disk image at {root}", "umount", str(root))

    def _offline(self, server: str) -> Path:
        """Unmount and wait until nothing uses the image; its path."""
        image = self.image(server)
        self._unmount(server)
        if not self._wait_detached(image):
            raise DiskError(
                f"the disk image {image} is still in use after unmounting it (loop device "
                f"{', '.join(loop_devices(image))}): a container or another mount namespace "
                "holds it; stop what uses it and retry"
            )
        return image

    # -- the interface --------------------------------------------------------------------
    def probe(self) -> Probe:
        try:
            for name in _PACKAGES:
                self._tool(name)
        except DiskError as exc:
            return Probe(exc.message)
        if os.geteuid() != 0:
            return Probe("the agent does not run as root, which loop mounts need")
        if not Path("/dev/loop-control").exists():
            return Probe("this host (or container) has no /dev/loop-control: no loop devices")
        name = f".probe-{uuid.uuid4().hex[:8]}"
        image, root = self.image(name), self.root(name)
        try:
            self.disks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._make(image, _PROBE_SIZE)
            self._mount(name)
            online = self._grow_online(name, _PROBE_SIZE + 1024 * 1024)
            self._offline(name)
        except (DiskError, OSError) as exc:
            return Probe(f"a test image could not be made and mounted: {_message(exc)}")
        finally:
            with contextlib.suppress(DiskError, OSError):
                self._unmount(name)
            with contextlib.suppress(OSError):
                root.rmdir()
            if self._wait_detached(image):
                image.unlink(missing_ok=True)
            else:  # pragma: no cover - only when the host holds the probe's loop device
                log.warning("the disk probe's image %s is still in use; left in place", image)
        return Probe(None, online_grow=online)

    def _make(self, image: Path, size: int) -> None:
        fresh = image.with_name(image.name + ".new")
        fresh.unlink(missing_ok=True)
        try:
            self._allocate(fresh, size)
            self._check(
                "making the disk's filesystem", "mkfs.ext4", "-q", "-F", "-m", "0", str(fresh)
            )
            os.chmod(fresh, 0o600)
            fresh.rename(image)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise

    def ensure(self, server: str, size: int) -> None:
        image = self.image(server)
        self.disks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not image.is_file():
            self._make(image, size)
            try:
                self._mount(server)
            except BaseException:
                if self._wait_detached(image):
                    image.unlink(missing_ok=True)
                raise
            return
        self._mount(server)
        if image.stat().st_size != size:
            self.resize(server, size, running=False, online_grow=False)

    def mount(self, server: str) -> None:
        image = self.image(server)
        if not image.is_file():
            raise DiskError(
                f"the disk image {image} of server {server!r} is missing; its data is gone "
                "unless you restore the file: reinstall the server to start with an empty disk"
            )
        self._mount(server)

    def unmount(self, server: str) -> None:
        self._unmount(server)

    def remove(self, server: str) -> None:
        image = self.image(server)
        if not image.exists() and not self.mounted(server):
            return
        self._offline(server)
        image.unlink(missing_ok=True)

    def usage(self, server: str) -> Usage:
        if not self.mounted(server):
            raise DiskError(
                f"the disk image of server {server!r} is not mounted (a resize may be under way; "
                "else see the server's error, and reinstall it to mount the image again)"
            )
        stat = os.statvfs(self.root(server))
        size = stat.f_blocks * stat.f_frsize
        free = stat.f_bfree * stat.f_frsize
        return Usage(
            size=size,
            used=size - free,
            available=stat.f_bavail * stat.f_frsize,
            limit=self.image(server).stat().st_size,
        )

    def _grow_online(self, server: str, size: int) -> bool:
        """Grow a mounted image; ``False`` (and the image as it was) if the kernel refuses."""
        image = self.image(server)
        device = self._device(server)
        if device is None:
            raise DiskError(f"the disk image {image} is not mounted")
        before = image.stat().st_size
        self._allocate(image, size)
        self._check("telling the loop device its new size", "losetup", "-c", device)
        done = self._run("growing the mounted filesystem", "resize2fs", device)
        if done.returncode == 0:
            return True
        log.info("online growth of %s refused (%s)", image, _said(done))
        self._check("putting the image's size back", "truncate", "-s", str(before), str(image))
        self._check("telling the loop device its size", "losetup", "-c", device)
        return False

    def resize(self, server: str, size: int, *, running: bool, online_grow: bool) -> None:
        image = self.image(server)
        before = image.stat().st_size
        if size == before:
            return
        mib = 1024 * 1024
        if size > before:
            if online_grow and self.mounted(server):
                if not self._grow_online(server, size):
                    raise DiskError(
                        "the kernel refused to grow the mounted filesystem (the agent lacks "
                        "CAP_SYS_RESOURCE); stop the server and resize again"
                    )
                return
            if running:
                raise DiskError(
                    "a running server's disk grows only where the agent may grow a mounted "
                    "filesystem (CAP_SYS_RESOURCE, which this agent lacks): stop the server, "
                    "resize, start it again"
                )
        else:
            if running:
                raise DiskError(
                    "a disk shrinks only while its server is stopped (the filesystem must be "
                    "unmounted): stop the server, then resize"
                )
            used = self.usage(server).used if self.mounted(server) else 0
            if used >= size:
                raise DiskError(
                    f"the disk holds {used / mib:.1f} MB, more than the new size of "
                    f"{size // mib} MB: delete files first, or choose a larger size"
                )
        self._offline(server)
        resizing = False  # once resize2fs ran, the image's end may hold the filesystem
        try:
            if size > before:
                self._allocate(image, size)
                self._fsck(image, force=True)
                resizing = True
                self._check("growing the filesystem", "resize2fs", str(image))
            else:
                self._fsck(image, force=True)
                done = self._run(
                    "shrinking the filesystem", "resize2fs", str(image), f"{size // 1024}K"
                )
                if done.returncode != 0:
                    raise DiskError(
                        f"the data does not fit in {size // mib} MB with the filesystem's own "
                        f"metadata (resize2fs: {_said(done)}); choose a larger size"
                    )
                cut = ("-s", str(size), str(image))
                self._check("cutting the image to its new size", "truncate", *cut)
        except BaseException:
            if not resizing and image.stat().st_size > before:  # the old filesystem is whole
                with contextlib.suppress(DiskError, OSError):
                    self._run("putting the size back", "truncate", "-s", str(before), str(image))
            with contextlib.suppress(DiskError, OSError):
                self._mount(server)
            raise
        self._mount(server)


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """The last lines a tool printed (stderr, else stdout), on one line."""
    text = (done.stderr or "").strip() or (done.stdout or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or "no output"


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, DiskError) else str(exc)
