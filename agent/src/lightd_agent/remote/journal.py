"""Where an update is written to the outbox: the bus's durable listener, and its gate.

:meth:`Journal.record` turns a lifecycle event into the seed's body (:mod:`.mapping`) and
commits it to the outbox (:mod:`.outbox`) before ``EventBus.publish`` returns.
:meth:`Journal.refusal` refuses new lifecycle actions (503) while the outbox is at its bound
(``remote.outbox_limit``), so nothing ever has to be dropped, and while any update could not be
written to it.

An update whose outbox write fails (disk full, read-only state directory) is not dropped: it
waits in memory, in order, and every later update waits behind it (so a server's updates keep
their order). Each delivery round, and each new update, tries to write the waiting ones again,
oldest first; until all are written new lifecycle actions are refused (503) and ``/health`` says
why. Only a crash in that window can lose them, which is why actions are refused meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightd_agent.events import LifecycleEvent
from lightd_agent.remote.mapping import update_body
from lightd_agent.remote.outbox import Outbox
from lightd_agent.state import StoredServer
from lightd_shared.remote import RemoteSettings

__all__ = ["STORAGE_RETRY_SECONDS", "Journal"]

log = logging.getLogger("lightd_agent.remote")

STORAGE_RETRY_SECONDS = 1.0
"""How often updates that could not be written to the outbox are tried again."""


class Journal:
    """The outbox's writer: durable listener, gate, and the updates waiting for the disk."""

    def __init__(
        self,
        outbox: Outbox,
        settings: Callable[[], RemoteSettings],
        state_dir: Path,
        wake: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self._settings = settings
        self.state_dir = state_dir
        self._wake = wake
        self.full = False
        self.storage_error: str | None = None
        # Updates the outbox could not take yet: (server, body, created at, event id), oldest
        # first.
        self.unwritten: list[tuple[str, dict[str, Any], float, int]] = []
        self._lock = threading.Lock()

    def record(self, event: LifecycleEvent) -> None:
        """Durable listener: commit the event's update to the outbox before publish returns."""
        settings = self._settings()
        if not settings.enabled:
            return
        body = update_body(event, settings.events)
        if body is None:
            return
        with self._lock:
            self.unwritten.append((event.server, body, time.time(), event.id))
            self._write_unwritten()
        self.check_bound()
        self._wake()

    def record_many(self, events: list[LifecycleEvent]) -> None:
        """Durable listener for a group (the servers' writer thread): every update of the
        group committed to the outbox in one transaction, before any of them is published."""
        settings = self._settings()
        if not settings.enabled:
            return
        now = time.time()
        bodies = [(e, update_body(e, settings.events)) for e in events]
        added = [(e.server, body, now, e.id) for e, body in bodies if body is not None]
        if not added:
            return
        with self._lock:
            self.unwritten.extend(added)
            self._write_unwritten()
        self.check_bound()
        self._wake()

    def replay(self, records: list[StoredServer]) -> int:
        """At start, before anything new is recorded: write every event that a state file holds
        ahead (its ``journal``) and this outbox does not, in order; how many were written.

        A kill between the state file's write and the outbox's commit leaves exactly those."""
        settings = self._settings()
        if not settings.enabled:
            return 0
        known = self.outbox.last_events()
        missing: list[tuple[str, dict[str, Any], float, int]] = []
        for record in records:
            server = record.spec.id
            for entry in record.journal:
                if entry.id <= known.get(server, 0):
                    continue
                body = update_body(entry.event(server, record.state), settings.events)
                if body is not None:
                    missing.append((server, body, entry.at.timestamp(), entry.id))
        if not missing:
            return 0
        with self._lock:
            self.unwritten.extend(missing)
            self._write_unwritten()
        log.warning(
            "wrote %d update(s) to the remote-sync outbox %s that a state file held ahead of "
            "it (the agent was stopped between the two writes)",
            len(missing),
            self.outbox.path,
        )
        self.check_bound()
        return len(missing)

    def _write_unwritten(self) -> bool:
        """Write the waiting updates, oldest first; ``True`` when none is left (lock held).

        Stops at the first failure so that no update overtakes an older one.
        """
        while self.unwritten:
            server = self.unwritten[0][0]
            try:
                seqs = self.outbox.enqueue_many(self.unwritten)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self.storage_error:  # once per problem, not once per retry
                    log.critical(
                        "could not write update for server %s to the remote-sync outbox %s "
                        "(%s); %d update%s kept in memory and retried every %.0fs; new "
                        "lifecycle actions are refused until the state directory is writable "
                        "again",
                        server,
                        self.outbox.path,
                        error,
                        len(self.unwritten),
                        "" if len(self.unwritten) == 1 else "s",
                        STORAGE_RETRY_SECONDS,
                        extra={"server": server, "unwritten": len(self.unwritten)},
                    )
                self.storage_error = error
                return False
            if log.isEnabledFor(logging.DEBUG):
                for (queued, body, _, _), seq in zip(self.unwritten, seqs, strict=True):
                    log.debug(
                        "queued update %s #%d for the remote",
                        queued,
                        seq,
                        extra={"server": queued, "sequence": seq, "body": body},
                    )
            self.unwritten.clear()
        if self.storage_error is not None:
            log.warning(
                "the remote-sync outbox %s is writable again; every waiting update is written "
                "and lifecycle actions are accepted again",
                self.outbox.path,
            )
            self.storage_error = None
        return True

    def retry_unwritten(self) -> None:
        with self._lock:
            if self.unwritten:
                self._write_unwritten()
        self.check_bound()

    def flush_at_exit(self) -> None:
        """A last try to write what waits; what still cannot be written is named as lost."""
        with self._lock:
            if self.unwritten:
                self._write_unwritten()
            if self.unwritten:
                log.critical(
                    "%d remote update(s) could never be written to the outbox %s and are lost "
                    "with this exit: %s",
                    len(self.unwritten),
                    self.outbox.path,
                    ", ".join(f"{server} {body}" for server, body, _, _ in self.unwritten),
                )

    def storage_blocked(self) -> bool:
        """Updates wait in memory for the outbox. Only while sync is on: turned off (a reload),
        nothing retries them and nothing new is recorded, so refusing actions would block the
        host for good; they stay in memory and are written when sync is turned on again.

        Only a failed write blocks: ``storage_error`` is set before a failed write returns and
        cleared once every waiting update is written. An update merely being written (it sits in
        ``unwritten`` during the commit, which lets other threads run) is no reason to refuse
        (issue 18: one action in about a thousand was refused "cannot be written (None)")."""
        return self._settings().enabled and self.storage_error is not None

    def refusal(self) -> str | None:
        """Gate: why new lifecycle actions must wait (answered 503), or ``None``."""
        if self.storage_blocked():
            return (
                f"the remote-sync outbox cannot be written ({self.storage_error}); "
                f"{len(self.unwritten)} updates wait in memory; "
                f"fix the state directory {self.state_dir}"
            )
        if self.full:
            # An acknowledgement committed in its thread ends a full outbox before its callback
            # reaches check_bound on the loop: read the bound again, so that the gate never
            # refuses while /health (which counts live) already says the outbox is not full.
            # Only while full: the count is one more query, in a state that is rare.
            self.check_bound()
        if self.full:
            settings = self._settings()
            return (
                f"the remote-sync outbox is full ({self.outbox.depth()} undelivered updates, "
                f"remote.outbox_limit is {settings.outbox_limit}); new lifecycle actions "
                f"are refused until the remote at {settings.shown_url()} takes them; "
                "check GET /health and the remote"
            )
        return None

    def check_bound(self) -> None:
        settings = self._settings()
        depth = self.outbox.depth()
        # Disabled, nothing new is recorded, so there is nothing to protect by refusing.
        full = settings.enabled and depth >= settings.outbox_limit
        if full and not self.full:
            log.error(
                "remote-sync outbox is FULL: %d undelivered updates (remote.outbox_limit %d). "
                "Nothing is dropped, but new lifecycle actions are refused with 503 until the "
                "remote at %s takes them. Check the remote and `lightd status`.",
                depth,
                settings.outbox_limit,
                settings.shown_url(),
                extra={"outbox_depth": depth, "outbox_limit": settings.outbox_limit},
            )
        elif self.full and not full:
            log.warning(
                "remote-sync outbox drained below its bound (%d of %d); lifecycle actions are "
                "accepted again",
                depth,
                settings.outbox_limit,
            )
        self.full = full
