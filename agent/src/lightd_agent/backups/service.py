"""``BackupService``: backups and restores of each server's volume, one operation at a time.

- **create**: answers at once (``running``); the archive is written in a thread
  (:mod:`.archive`) straight into the target (:mod:`.local`, :mod:`.s3`), and the metadata
  (:mod:`.store`) says ``completed`` with size and checksum, or ``failed`` with the error. After
  a completed backup, the oldest completed ones beyond ``backups.retention`` are deleted.
- **restore**: a power action under the server's lock: the server is stopped if it runs, the
  archive is extracted into staging and verified, the volume's children are swapped
  (:mod:`.swap`, journaled), and the server is started again if it was running. A failed
  restore leaves the old content.
- Every step is published on the bus (``backup_started`` ... ``restore_failed``, see
  :data:`lightd_shared.backups.BACKUP_EVENT_KINDS`), progress at most once per
  ``backups.progress_interval``; a failure becomes the remote's error update
  (``"data": "backup failed: ..."`` / ``"restore failed: ..."``).

One backup or restore runs per server at a time (another one answers 409).

Over 400 lines on purpose: it is one idea, the life of a backup and of a restore (claim,
run, publish, record); the archive, targets, store and swap are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from lightd_agent.backups.archive import Cancelled, ignore_spec, write_archive
from lightd_agent.backups.extract import extract_archive
from lightd_agent.backups.local import LocalTarget
from lightd_agent.backups.store import BackupStore
from lightd_agent.backups.swap import Journal, finish, prepare, recover_all, roll_back
from lightd_agent.backups.target import Target, TargetError
from lightd_agent.config import AgentConfig
from lightd_agent.errors import AgentError, BadRequest, Conflict, NotFound, Unavailable
from lightd_agent.events import EventBus, LifecycleEvent, LifecycleKind
from lightd_agent.servers import ServerManager
from lightd_agent.servers.model import Server
from lightd_shared.backups import BackupInfo, RestoreOutcome
from lightd_shared.timestamps import utcnow

if TYPE_CHECKING:
    import pathspec

__all__ = ["BackupService", "make_target"]

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


def make_target(config: AgentConfig) -> Target:
    section = config.backups
    if section.target == "s3":
        from lightd_agent.backups.s3 import S3Target  # boto3 is imported only when used

        return S3Target(section.s3)
    return LocalTarget(section.local_dir or config.storage.state_dir / "backups")


def _key(info: BackupInfo) -> str:
    return f"{info.server}/{info.id}.tar.gz"


def _new_id() -> str:
    return f"{utcnow():%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return exc.message
    text = str(exc) or type(exc).__name__
    return text[:900]


class _Pacer:
    """Calls ``publish`` at most once per ``interval`` seconds (from the worker thread)."""

    def __init__(self, interval: float, publish: Callable[[int, int], None]) -> None:
        self._interval = interval
        self._publish = publish
        self._last = time.monotonic()

    def __call__(self, size: int, files: int) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._publish(size, files)


class BackupService:
    def __init__(
        self,
        config: AgentConfig,
        manager: ServerManager,
        bus: EventBus,
        target: Target | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.bus = bus
        self.target = target or make_target(config)
        state = config.storage.state_dir
        self.store = BackupStore(state / "backups-meta")
        self.journals = state / "restores"
        self._busy: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        """Running backups by id, for :meth:`create_and_wait`."""
        self._stopping = threading.Event()

    # -- start and stop ---------------------------------------------------------------------
    def recover(self) -> None:
        """At start, before any server starts: finish cut-off restores, fail cut-off backups."""
        for journal, holds in recover_all(self.journals):
            info = self.store.get(journal.server, journal.backup)
            if info is not None and info.last_restore is not None:
                info.last_restore.state = "failed"
                info.last_restore.finished = utcnow()
                info.last_restore.error = (
                    f"the agent stopped during this restore (phase {journal.phase}); at its "
                    f"next start the volume was left whole with the {holds} content"
                )
                info.last_restore = info.last_restore
                self.store.save(info)
        if isinstance(self.target, LocalTarget):
            for path in self.target.discard_partial():
                log.info("removed %s, left by a backup that was cut off", path)
        for info in self.store.fail_interrupted():
            log.warning(
                "backup %s of server %s was running when the agent stopped; marked failed",
                info.id,
                info.server,
                extra={"server": info.server, "backup": info.id},
            )

    async def stop(self, grace: float) -> None:
        """Cut running backups and extractions off (a swap already begun finishes)."""
        self._stopping.set()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- looking ----------------------------------------------------------------------------
    def _server(self, server_id: str) -> Server:
        return self.manager.get(server_id)

    def listing(self, server_id: str) -> list[BackupInfo]:
        self._server(server_id)
        return self.store.listing(server_id)

    def get(self, server_id: str, backup_id: str) -> BackupInfo:
        self._server(server_id)
        info = self.store.get(server_id, backup_id)
        if info is None:
            raise NotFound(f"server {server_id!r} has no backup {backup_id!r}")
        return info

    def _completed(self, server_id: str, backup_id: str, doing: str) -> BackupInfo:
        info = self.get(server_id, backup_id)
        if info.state != "completed":
            raise Conflict(f"backup {backup_id!r} is {info.state}; only a completed one {doing}")
        return info

    async def open_download(self, server_id: str, backup_id: str) -> tuple[Iterator[bytes], int]:
        """The archive's bytes (to iterate in a thread) and its size."""
        info = self._completed(server_id, backup_id, "can be downloaded")
        try:
            source = await asyncio.to_thread(self.target.open, _key(info))
        except TargetError as exc:
            raise Unavailable(f"backup {backup_id!r} cannot be read: {exc}") from None

        def chunks() -> Iterator[bytes]:
            try:
                while data := source.read(_CHUNK):
                    yield data
            finally:
                source.close()

        return chunks(), info.size or 0

    # -- create -----------------------------------------------------------------------------
    def _claim(self, server: Server, what: str) -> None:
        if self._stopping.is_set():
            raise Unavailable("the agent is shutting down")
        reason = self.bus.refusal()
        if reason:
            raise Unavailable(f"lifecycle actions are refused right now: {reason}")
        busy = self._busy.get(server.id)
        if busy is not None:
            raise Conflict(f"server {server.id!r} is busy with {busy}; wait until it ends")
        if server.installing() or server.state == "installing":
            raise Conflict(f"server {server.id!r} is installing; wait until it is ready")
        self._busy[server.id] = what

    def _spawn(
        self, server_id: str, work: Coroutine[Any, Any, None], *, power: bool = False
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"{'restore' if power else 'backup'} of {server_id}")
        self._tasks.add(task)
        if power:
            # a restore is a power action: the shutdown's drain waits for it within the grace,
            # as for the others (the manager's set of running actions)
            self.manager._actions.add(task)
            task.add_done_callback(self.manager._actions.discard)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._busy.pop(server_id, None)

        task.add_done_callback(done)
        return task

    def _publish(
        self, server: Server, kind: LifecycleKind, data: str, *, failed: bool = False
    ) -> None:
        self.bus.publish(
            LifecycleEvent(
                server=server.id,
                kind=kind,
                state=server.state,
                error="failed" if failed else None,
                data=data,
            )
        )

    def _publish_soon(self, loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
        def publish(server: Server, kind: LifecycleKind, data: str) -> None:
            loop.call_soon_threadsafe(self._publish, server, kind, data)

        return publish

    async def create(self, server_id: str, ignore: list[str]) -> BackupInfo:
        server = self._server(server_id)
        patterns = [*self.config.backups.ignore, *ignore]
        try:  # a pattern pathspec cannot read is a 400 before anything starts
            spec = ignore_spec(patterns)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"ignore: {exc}") from None
        self._claim(server, "a backup")
        info = BackupInfo(
            id=_new_id(),
            server=server.id,
            state="running",
            target="s3" if self.target.kind == "s3" else "local",
            created=utcnow(),
            ignored=patterns,
        )
        try:
            await asyncio.to_thread(self.store.save, info)
        except BaseException:
            self._busy.pop(server.id, None)
            raise
        self._publish(server, "backup_started", f"backup {info.id} started")
        self._running[info.id] = self._spawn(server.id, self._run_backup(server, info, spec))
        self._running[info.id].add_done_callback(lambda _: self._running.pop(info.id, None))
        return info

    async def create_and_wait(self, server_id: str, ignore: list[str]) -> BackupInfo:
        """A backup as :meth:`create` starts it, answered once it ended (a scheduled task)."""
        info = await self.create(server_id, ignore)
        running = self._running.get(info.id)
        if running is not None:
            # shielded: the waiter giving up (its run cut off) never cuts the backup itself
            await asyncio.wait([asyncio.shield(running)])
        return self.get(server_id, info.id)

    async def _run_backup(
        self, server: Server, info: BackupInfo, spec: pathspec.PathSpec[Any]
    ) -> None:
        loop = asyncio.get_running_loop()
        publish = self._publish_soon(loop)
        root = self.config.storage.volumes_dir / server.id
        pace = _Pacer(
            self.config.backups.progress_interval.total_seconds(),
            lambda size, files: publish(
                server, "backup_progress", f"backup {info.id}: {files} entries, {size} bytes"
            ),
        )

        def produce(sink: BinaryIO) -> None:
            if not root.is_dir():
                raise FileNotFoundError(f"the server's volume {root} does not exist")
            stats = write_archive(
                root,
                sink,
                spec,
                progress=pace,
                cancelled=self._stopping.is_set,
            )
            info.size, info.checksum, info.files = stats.size, stats.checksum, stats.files
            info.skipped = stats.skipped

        try:
            await asyncio.to_thread(self.target.store, _key(info), produce)
        except BaseException as exc:
            if isinstance(exc, Cancelled):
                reason = "the agent shut down before it ended"
            else:
                reason = _reason(exc)
            info.state, info.error, info.finished = "failed", reason, utcnow()
            info.size = info.checksum = info.files = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.save, info)
            log.error(
                "backup %s of server %s failed: %s",
                info.id,
                server.id,
                reason,
                extra={"server": server.id, "backup": info.id},
            )
            self._publish(server, "backup_failed", f"backup failed: {reason}", failed=True)
            if not isinstance(exc, Exception):
                raise
            return
        info.state, info.finished = "completed", utcnow()
        await asyncio.to_thread(self.store.save, info)
        log.info(
            "backup %s of server %s completed (%s bytes)",
            info.id,
            server.id,
            info.size,
            extra={"server": server.id, "backup": info.id},
        )
        self._publish(
            server,
            "backup_completed",
            f"backup {info.id} completed: {info.size} bytes, sha256 {info.checksum}",
        )
        await self._retain(server.id)

    async def _retain(self, server_id: str) -> None:
        keep = self.config.backups.retention
        if keep <= 0:
            return
        completed = [b for b in self.store.listing(server_id) if b.state == "completed"]
        for old in completed[: max(0, len(completed) - keep)]:
            try:
                await asyncio.to_thread(self._remove, old)
            except Exception as exc:
                log.error("retention could not delete backup %s: %s", old.id, _reason(exc))
            else:
                log.info("retention deleted backup %s of server %s", old.id, server_id)

    def _remove(self, info: BackupInfo) -> None:
        if info.state == "completed":
            self.target.delete(_key(info))
        self.store.remove(info.server, info.id)

    async def delete(self, server_id: str, backup_id: str) -> BackupInfo:
        info = self.get(server_id, backup_id)
        if info.state == "running" or (
            info.last_restore is not None and info.last_restore.state == "running"
        ):
            raise Conflict(f"backup {backup_id!r} is in use ({self._busy.get(server_id)})")
        try:
            await asyncio.to_thread(self._remove, info)
        except TargetError as exc:
            raise Unavailable(f"backup {backup_id!r} cannot be deleted: {exc}") from None
        return info

    # -- restore ----------------------------------------------------------------------------
    async def restore(self, server_id: str, backup_id: str) -> BackupInfo:
        server = self._server(server_id)
        info = self._completed(server_id, backup_id, "can be restored")
        if server.hold is not None:
            raise Conflict(f"server {server_id!r} is {server.hold}")
        self._claim(server, f"a restore from {backup_id}")
        info.last_restore = RestoreOutcome(state="running", started=utcnow())
        try:
            await asyncio.to_thread(self.store.save, info)
        except BaseException:
            self._busy.pop(server.id, None)
            raise
        self._publish(server, "restore_started", f"restore from backup {info.id} started")
        self._spawn(server.id, self._run_restore(server, info), power=True)
        return info

    def _restore_sync(self, server: Server, info: BackupInfo, publish: Callable[..., None]) -> int:
        root = self.config.storage.volumes_dir / server.id
        if not root.is_dir():
            raise FileNotFoundError(f"the server's volume {root} does not exist")
        journal = Journal(
            path=self.journals / f"{server.id}.json",
            server=server.id,
            backup=info.id,
            root=str(root),
        )
        new = prepare(journal)
        pace = _Pacer(
            self.config.backups.progress_interval.total_seconds(),
            lambda size, files: publish(
                server, "restore_progress", f"restore from {info.id}: {files} entries, {size} bytes"
            ),
        )
        try:
            source = self.target.open(_key(info))
            try:
                count = extract_archive(
                    source, new, info.checksum or "", progress=pace, cancelled=self._stopping.is_set
                )
            finally:
                source.close()
        except BaseException:
            roll_back(journal)
            raise
        finish(journal)
        return count

    async def _run_restore(self, server: Server, info: BackupInfo) -> None:
        loop = asyncio.get_running_loop()
        publish = self._publish_soon(loop)
        powers = self.manager.powers
        outcome = info.last_restore or RestoreOutcome(state="running", started=utcnow())
        error: BaseException | None = None
        count = 0
        async with server.lock:
            was_running = server.state == "running"
            server.restoring = info.id
            try:
                if not self.manager.registry.registered(server):
                    raise NotFound(f"no server with id {server.id!r} on this agent")
                if server.state in ("running", "stopping", "crashed"):
                    await powers.stop_locked(
                        server, self.config.backups.stop_timeout.total_seconds(), kill=False
                    )
                count = await asyncio.to_thread(self._restore_sync, server, info, publish)
            except BaseException as exc:
                error = exc
            finally:
                server.restoring = None
            if was_running:
                try:
                    await powers.start_locked(server)
                except AgentError as exc:
                    if error is None:
                        error = exc
        outcome.finished = utcnow()
        if error is None:
            outcome.state = "completed"
        else:
            outcome.state = "failed"
            outcome.error = (
                "the agent shut down before it ended; the old content is kept"
                if isinstance(error, Cancelled)
                else _reason(error)
            )
        info.last_restore = outcome
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.save, info)
        if error is None:
            log.info("server %s restored from backup %s", server.id, info.id)
            self._publish(
                server, "restore_completed", f"restored from backup {info.id}: {count} entries"
            )
            return
        log.error(
            "restore of server %s from backup %s failed: %s",
            server.id,
            info.id,
            outcome.error,
            extra={"server": server.id, "backup": info.id},
        )
        self._publish(server, "restore_failed", f"restore failed: {outcome.error}", failed=True)
        if not isinstance(error, Exception):
            raise error
