"""RemoteSync against a real recording HTTP server on loopback: bodies, headers, delivery rules."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lightd_agent.events import LifecycleEvent
from lightd_agent.remote.sync import TOKEN_HINT
from tests.harness.wait import until
from tests.remote.conftest import REMOTE_TOKEN, settings_for
from tests.remote.recorder import PREFIX, RemoteServer

pytestmark = pytest.mark.anyio


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll until ``check()`` holds (:func:`tests.harness.wait.until`)."""
    await until(check, timeout, interval=0.02)


def event(server: str, kind: Any, **fields: Any) -> LifecycleEvent:
    state = {"Ready": "ready", "Error": "failed"}.get(kind, "installing")
    return LifecycleEvent(server=server, kind=kind, state=state, **fields)


async def test_install_flow_sends_the_seed_bodies_paths_and_headers(
    remote: RemoteServer, make_sync: Any
) -> None:
    sync, bus = await make_sync(settings_for(remote.url))
    for kind in ("Started", "CreatingContainer", "Ready"):
        bus.publish(event("my-server-001", kind))
    await eventually(lambda: len(remote.updates()) == 3)

    updates = remote.updates()
    assert [u.body for u in updates] == [
        {"event": "update", "server": "my-server-001", "status": "installing"},
        {"event": "update", "server": "my-server-001", "status": "installing"},
        {"event": "update", "server": "my-server-001", "status": "ready"},
    ]
    for number, update in enumerate(updates, start=1):
        assert update.method == "POST"
        assert update.path == f"{PREFIX}/update"
        assert update.headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
        assert update.headers["content-type"] == "application/json"
        assert update.headers["x-lightd-sequence"] == str(number)
    keys = [u.headers["idempotency-key"] for u in updates]
    assert len(set(keys)) == 3
    await eventually(lambda: sync.snapshot().outbox_depth == 0)


async def test_error_event_sends_the_error_body(remote: RemoteServer, make_sync: Any) -> None:
    _, bus = await make_sync(settings_for(remote.url))
    bus.publish(event("s1", "Started"))
    bus.publish(
        event(
            "s1",
            "Error",
            error="failed",
            data="Docker container creation failed: image not found",
        )
    )
    await eventually(lambda: len(remote.updates()) == 2)
    assert remote.updates()[1].body == {
        "event": "update",
        "server": "s1",
        "error": "failed",
        "data": "Docker container creation failed: image not found",
    }


async def test_the_bytes_on_the_wire_are_the_compact_json_the_outbox_stored(
    remote: RemoteServer, make_sync: Any
) -> None:
    """The outbox's stored text is the request body, byte for byte (compact separators, the
    seed's key order, non-ASCII escaped), and the headers arrive in one fixed order."""
    _, bus = await make_sync(settings_for(remote.url))
    bus.publish(event("my-server-001", "Started"))
    data = 'Docker said: "no space left" \u2014 caf\u00e9 \U0001f600\nline 2\\'
    bus.publish(event("my-server-001", "Error", error="failed", data=data))
    await eventually(lambda: len(remote.updates()) == 2)

    status, error = remote.updates()
    assert status.raw == b'{"event":"update","server":"my-server-001","status":"installing"}'
    assert error.raw == (
        b'{"event":"update","server":"my-server-001","error":"failed","data":'
        b'"Docker said: \\"no space left\\" \\u2014 caf\\u00e9 \\ud83d\\ude00\\nline 2\\\\"}'
    )
    assert error.body["data"] == data
    for update in (status, error):
        assert update.header_names == (
            "host",
            "accept-encoding",
            "connection",
            "authorization",
            "user-agent",
            "accept",
            "idempotency-key",
            "x-lightd-sequence",
            "content-type",
            "content-length",
        )
        assert update.headers["content-length"] == str(len(update.raw))


async def test_runtime_statuses_only_with_events_all(
    remote: RemoteServer, make_sync: Any, tmp_path: Path
) -> None:
    _, seed_bus = await make_sync(settings_for(remote.url))
    for kind in ("Running", "Stopped", "Crashed", "Deleted", "Ready"):
        seed_bus.publish(LifecycleEvent(server="seed", kind=kind, state="x"))
    await eventually(lambda: len(remote.updates()) == 1)
    assert remote.updates()[0].body["status"] == "ready"

    remote.clear()
    # its own outbox: two syncs on one outbox file would both deliver its rows
    sync_all, all_bus = await make_sync(
        settings_for(remote.url, events="all"), state_dir=tmp_path / "state-all"
    )
    for kind in ("Running", "Stopped", "Crashed", "Deleted", "Ready"):
        all_bus.publish(LifecycleEvent(server="all", kind=kind, state="x"))
    # a last update of the same server: one server's updates arrive in order, so once it is
    # in, everything before it was sent or never will be (Deleted)
    all_bus.publish(LifecycleEvent(server="all", kind="Error", state="failed", error="last"))
    await eventually(lambda: any(u.body.get("error") == "last" for u in remote.updates()))
    assert [u.body.get("status", u.body.get("error")) for u in remote.updates()] == [
        "running",
        "stopped",
        "crashed",
        "ready",
        "last",
    ]
    # acknowledged rows are deleted in groups, a moment after the remote has them
    await eventually(lambda: sync_all.snapshot().outbox_depth == 0)


async def test_health_loop_logs_ok_then_failed_then_ok(
    remote: RemoteServer, make_sync: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightd_agent.remote")
    sync, _ = await make_sync(settings_for(remote.url))

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith(text)]

    await eventually(lambda: len(lines("Remote health check: OK")) >= 2)
    health = [r for r in remote.requests if r.path == f"{PREFIX}/health"]
    assert health[0].method == "GET"
    assert health[0].headers["authorization"] == f"Bearer {REMOTE_TOKEN}"
    assert sync.snapshot().remote == "ok"

    remote.stop()
    await eventually(lambda: len(lines("Remote health check: Failed")) >= 1)
    assert "127.0.0.1" in lines("Remote health check: Failed")[0]  # the reason says where
    assert sync.snapshot().remote == "failed"

    remote.behaviour.fail_health = True
    remote.behaviour.status = 401
    remote.start()
    await eventually(lambda: any(TOKEN_HINT in line for line in lines("Remote health check: F")))

    remote.behaviour.fail_health = False
    remote.behaviour.status = None
    ok_before = len(lines("Remote health check: OK"))
    await eventually(lambda: len(lines("Remote health check: OK")) > ok_before)
    assert sync.snapshot().remote == "ok"


async def test_remote_down_then_back_delivers_everything_in_order(
    remote: RemoteServer, make_sync: Any
) -> None:
    remote.stop()
    sync, bus = await make_sync(settings_for(remote.url, retry_max_delay="30s"))
    servers = [f"srv-{n}" for n in range(4)]
    for kind in ("Started", "CreatingContainer", "Ready"):
        for server in servers:
            bus.publish(event(server, kind))
    await eventually(lambda: sync.snapshot().remote == "failed")
    snapshot = sync.snapshot()
    assert snapshot.outbox_depth == 12
    assert snapshot.oldest_undelivered_age_seconds is not None

    # The backoff cap is 30 s: only the health check seeing the remote back explains a quick
    # delivery.
    remote.start()
    await eventually(lambda: len(remote.updates()) == 12, timeout=10)
    for server in servers:
        mine = [u for u in remote.updates() if u.body["server"] == server]
        assert [u.body["status"] for u in mine] == ["installing", "installing", "ready"]
        assert [u.headers["x-lightd-sequence"] for u in mine] == ["1", "2", "3"]
    await eventually(lambda: sync.snapshot().outbox_depth == 0)
    assert sync.snapshot().oldest_undelivered_age_seconds is None


async def test_401_is_logged_clearly_and_not_hammered(
    remote: RemoteServer, make_sync: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightd_agent.remote")
    remote.behaviour.status = 401
    remote.behaviour.fail_health = True
    sync, bus = await make_sync(settings_for(remote.url, health_interval="300ms"))
    bus.publish(event("s1", "Started"))
    await eventually(lambda: len(remote.updates(401)) >= 1)
    began = time.monotonic()
    await eventually(lambda: len(remote.updates(401)) >= 4)
    elapsed = time.monotonic() - began
    attempts = len(remote.updates(401))
    # Once per health interval (300 ms), never a tight loop: at most one per interval + 1.
    assert 4 <= attempts <= int(elapsed / 0.3) + 2
    assert any(TOKEN_HINT in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # with the remote's own words (the coordinator explains a missing node proof there)
    assert "test remote answers 401" in caplog.text
    keys = {u.headers["idempotency-key"] for u in remote.updates(None)}
    assert len(keys) == 1  # the same update, with the same key on every retry
    assert REMOTE_TOKEN not in caplog.text  # the secret is never logged

    remote.behaviour.status = None
    remote.behaviour.fail_health = False
    await eventually(lambda: len(remote.updates(200)) == 1)
    assert remote.updates(200)[0].headers["idempotency-key"] in keys
    await eventually(lambda: sync.snapshot().outbox_depth == 0)


async def test_404_goes_to_the_dead_letters_and_replays(
    remote: RemoteServer, make_sync: Any
) -> None:
    remote.behaviour.status = 404
    sync, bus = await make_sync(settings_for(remote.url))
    bus.publish(event("s1", "Started"))
    await eventually(lambda: sync.snapshot().dead_letters == 1)
    assert len(remote.updates(404)) == 1  # not retried
    [dead] = sync.dead_letters()
    assert dead.status_code == 404
    assert dead.server == "s1"
    assert dead.sequence == 1
    assert dead.body == {"event": "update", "server": "s1", "status": "installing"}
    assert "404" in dead.reason

    # The next update of the same server is not blocked behind it.
    remote.behaviour.status = None
    bus.publish(event("s1", "Ready"))
    await eventually(lambda: len(remote.updates(200)) == 1)
    assert remote.updates(200)[0].headers["x-lightd-sequence"] == "2"

    assert sync.replay(dead.id)
    await eventually(lambda: len(remote.updates(200)) == 2)
    replayed = remote.updates(200)[1]
    assert replayed.body == dead.body
    assert replayed.headers["idempotency-key"] == dead.idempotency_key
    assert replayed.headers["x-lightd-sequence"] == "1"
    assert sync.snapshot().dead_letters == 0
    assert not sync.replay(dead.id)


async def test_500_is_retried_with_the_same_key_until_acknowledged(
    remote: RemoteServer, make_sync: Any
) -> None:
    remote.behaviour.status = 500
    sync, bus = await make_sync(settings_for(remote.url, retry_max_delay="200ms"))
    bus.publish(event("s1", "Started"))
    bus.publish(event("s1", "Ready"))
    await eventually(lambda: len(remote.updates(500)) >= 3)
    # In order: the second update is never tried while the first is not acknowledged.
    assert {u.headers["x-lightd-sequence"] for u in remote.updates(500)} == {"1"}
    assert len({u.headers["idempotency-key"] for u in remote.updates(500)}) == 1
    assert sync.snapshot().dead_letters == 0

    remote.behaviour.status = None
    await eventually(lambda: len(remote.updates(200)) == 2)
    assert [u.headers["x-lightd-sequence"] for u in remote.updates(200)] == ["1", "2"]
    await eventually(lambda: sync.snapshot().outbox_depth == 0)
    # a third update of the same server is sent only after the first two are done with
    bus.publish(event("s1", "Error", error="failed", data="third"))
    await eventually(lambda: len(remote.updates(200)) == 3)
    assert [u.headers["x-lightd-sequence"] for u in remote.updates(None)][-1] == "3"
    acknowledged = [u.headers["x-lightd-sequence"] for u in remote.updates(200)]
    assert acknowledged == ["1", "2", "3"]  # acknowledged: never sent again


async def test_retry_after_is_honoured(remote: RemoteServer, make_sync: Any) -> None:
    remote.behaviour.status = 503
    remote.behaviour.retry_after = "1"
    # The next health check (which would end the pause) is 30 s away.
    sync, bus = await make_sync(
        settings_for(remote.url, retry_max_delay="10s", health_interval="30s")
    )
    await eventually(lambda: sync.snapshot().remote == "ok")
    bus.publish(event("s1", "Started"))
    await eventually(lambda: len(remote.updates(503)) == 1)
    first = time.monotonic()
    remote.behaviour.status = None
    await eventually(lambda: len(remote.updates(200)) == 1)
    # Without Retry-After the first backoff (0.25-0.5 s) would retry sooner.
    assert time.monotonic() - first >= 0.9


async def test_a_huge_retry_after_is_capped_at_retry_max_delay(
    remote: RemoteServer, make_sync: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightd_agent.remote")
    remote.behaviour.status = 503
    remote.behaviour.retry_after = "86400"
    # Health checks are 30 s apart: only the cap explains a retry within seconds.
    sync, bus = await make_sync(
        settings_for(remote.url, retry_max_delay="500ms", health_interval="30s")
    )
    await eventually(lambda: sync.snapshot().remote == "ok")
    bus.publish(event("s1", "Started"))
    await eventually(lambda: len(remote.updates(503)) == 2, timeout=5)
    assert any("capped at remote.retry_max_delay" in r.getMessage() for r in caplog.records)
    remote.behaviour.status = None
    await eventually(lambda: len(remote.updates(200)) == 1, timeout=5)
    await eventually(lambda: sync.snapshot().outbox_depth == 0)


async def test_a_good_health_check_ends_a_retry_after_pause(
    remote: RemoteServer, make_sync: Any
) -> None:
    remote.behaviour.status = 503
    remote.behaviour.retry_after = "86400"
    # The cap (1 h) still leaves a long pause: only the health check (200 ms) can end it.
    sync, bus = await make_sync(settings_for(remote.url, retry_max_delay="1h"))
    bus.publish(event("s1", "Started"))
    # at least one: each good health check (every 200 ms) ends the pause, so a slow poll here
    # may first see the update refused twice
    await eventually(lambda: len(remote.updates(503)) >= 1)
    remote.behaviour.status = None
    await eventually(lambda: len(remote.updates(200)) == 1, timeout=5)
    await eventually(lambda: sync.snapshot().outbox_depth == 0)


async def test_timeout_is_logged_and_the_update_retried(
    remote: RemoteServer, make_sync: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightd_agent.remote")
    remote.behaviour.delay = 1.0
    sync, bus = await make_sync(settings_for(remote.url, timeout="200ms"))
    bus.publish(event("s1", "Started"))
    await eventually(lambda: any("timed out after 200ms" in r.getMessage() for r in caplog.records))
    assert sync.snapshot().outbox_depth == 1  # the agent carries on, the update is kept
    await eventually(
        lambda: any(
            r.getMessage().startswith("Remote health check: Failed")
            and "timed out after 200ms" in r.getMessage()
            for r in caplog.records
        )
    )
    remote.behaviour.delay = 0.0
    await eventually(lambda: sync.snapshot().outbox_depth == 0)
    keys = {u.headers["idempotency-key"] for u in remote.updates(None)}
    assert len(keys) == 1
    assert len(remote.updates(None)) >= 2


async def test_outbox_bound_refuses_new_actions_until_it_drains(
    remote: RemoteServer, make_sync: Any, caplog: pytest.LogCaptureFixture
) -> None:
    remote.stop()
    sync, bus = await make_sync(settings_for(remote.url, outbox_limit=3))
    for kind in ("Started", "CreatingContainer"):
        bus.publish(event("s1", kind))
    assert bus.refusal() is None
    bus.publish(event("s1", "Ready"))
    reason = bus.refusal()
    assert reason is not None
    assert "outbox is full" in reason
    assert sync.snapshot().outbox_full
    assert "outbox is full" in (sync.snapshot().degraded_reason or "")
    assert any("FULL" in r.getMessage() for r in caplog.records)
    # At the bound nothing is dropped: an action already running still records its update.
    bus.publish(event("s2", "Started"))
    assert sync.snapshot().outbox_depth == 4

    remote.start()
    await eventually(lambda: sync.snapshot().outbox_depth == 0)
    assert bus.refusal() is None
    assert sync.snapshot().degraded_reason is None
    assert len(remote.updates()) == 4


async def test_disabled_remote_records_and_sends_nothing(
    remote: RemoteServer, make_sync: Any
) -> None:
    settings = settings_for(remote.url).model_copy(update={"enabled": False})
    sync, bus = await make_sync(settings)
    bus.publish(event("s1", "Started"))
    # nothing was queued and no loop runs that could send it later: no need to wait and see
    assert sync.snapshot().outbox_depth == 0
    assert sync._tasks == [] and sync._client is None
    assert remote.requests == []
    assert sync.snapshot().remote == "disabled"


class BrokenDisk:
    """Makes ``sync``'s outbox writes fail as a broken disk does: every write while ``broken``,
    and the next ``failures`` writes. (Patching is the only way here: the tests run as root,
    so a read-only directory would not stop SQLite.)"""

    def __init__(self, sync: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.broken = False
        self.failures = 0
        self.refused = 0
        """Writes refused so far."""
        self._enqueue = sync.outbox.enqueue
        self._enqueue_many = sync.outbox.enqueue_many
        monkeypatch.setattr(sync.outbox, "enqueue", self.enqueue)
        monkeypatch.setattr(sync.outbox, "enqueue_many", self.enqueue_many)

    def enqueue(self, server: str, body: dict[str, Any], **kwargs: Any) -> int:
        if self.failures:
            self.failures -= 1
            self.refused += 1
            raise sqlite3.OperationalError("disk I/O error")
        if self.broken:
            self.refused += 1
            raise sqlite3.OperationalError("disk I/O error")
        result: int = self._enqueue(server, body, **kwargs)
        return result

    def enqueue_many(self, updates: list[Any]) -> list[int]:
        """The journal's group write: one transaction, so it fails (or not) as a whole; every
        update of a refused group counts as refused."""
        if self.failures:
            self.failures -= 1
            self.refused += len(updates)
            raise sqlite3.OperationalError("disk I/O error")
        if self.broken:
            self.refused += len(updates)
            raise sqlite3.OperationalError("disk I/O error")
        result: list[int] = self._enqueue_many(updates)
        return result


async def test_updates_the_outbox_could_not_take_are_kept_and_arrive_in_order(
    remote: RemoteServer,
    make_sync: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync, bus = await make_sync(settings_for(remote.url))
    disk = BrokenDisk(sync, monkeypatch)
    bus.publish(event("s1", "Started"))
    await eventually(lambda: len(remote.updates()) == 1)

    disk.broken = True
    bus.publish(event("s1", "CreatingContainer"))
    bus.publish(event("s2", "Started"))
    bus.publish(event("s1", "Ready"))
    reason = bus.refusal()
    assert reason is not None and "cannot be written" in reason and "disk I/O error" in reason
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
    snapshot = sync.snapshot()
    assert snapshot.outbox_unwritten == 3
    assert snapshot.degraded_reason is not None
    assert "cannot be written" in snapshot.degraded_reason
    # the delivery loop retries the writes (and fails): wait for a second round of them
    refused = disk.refused
    await eventually(lambda: disk.refused >= refused + 3)
    assert len(remote.updates()) == 1
    assert bus.refusal() is not None

    disk.broken = False
    await eventually(lambda: len(remote.updates()) == 4)
    assert bus.refusal() is None
    assert sync.snapshot().degraded_reason is None
    assert sync.snapshot().outbox_unwritten == 0
    bus.publish(event("s1", "Error", error="failed", data="late"))
    await eventually(lambda: len(remote.updates()) == 5)
    s1 = [u for u in remote.updates() if u.body["server"] == "s1"]
    assert [u.body.get("status", u.body.get("error")) for u in s1] == [
        "installing",
        "installing",
        "ready",
        "failed",
    ]
    assert [u.headers["x-lightd-sequence"] for u in s1] == ["1", "2", "3", "4"]
    [s2] = [u for u in remote.updates() if u.body["server"] == "s2"]
    assert s2.body["status"] == "installing"
    await eventually(lambda: sync.snapshot().outbox_depth == 0)


async def test_turning_sync_off_lifts_the_unwritten_gate_and_keeps_the_updates(
    remote: RemoteServer, make_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who turns remote sync off while the disk is broken gets the host back;
    the updates stay in memory and arrive once sync is on again and the disk works."""
    sync, bus = await make_sync(settings_for(remote.url))
    disk = BrokenDisk(sync, monkeypatch)
    disk.broken = True
    bus.publish(event("s1", "Started"))
    assert bus.refusal() is not None
    await sync.apply(settings_for(remote.url, enabled=False))
    assert bus.refusal() is None
    assert sync.snapshot().degraded_reason is None
    disk.broken = False
    await sync.apply(settings_for(remote.url))
    await eventually(lambda: len(remote.updates()) == 1)
    assert remote.updates()[0].body == {"event": "update", "server": "s1", "status": "installing"}
    assert bus.refusal() is None


async def test_a_newer_update_waits_behind_an_unwritten_one(
    remote: RemoteServer, make_sync: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, bus = await make_sync(settings_for(remote.url))
    BrokenDisk(sync, monkeypatch).failures = 1
    bus.publish(event("s1", "Started"))  # fails once, waits in memory
    bus.publish(event("s1", "Ready"))  # the write works again: the older one goes first
    await eventually(lambda: len(remote.updates()) == 2)
    assert [u.body["status"] for u in remote.updates()] == ["installing", "ready"]
    assert bus.refusal() is None


def _bodies_of(remote: RemoteServer, server: str) -> list[dict[str, Any]]:
    """Each distinct update of ``server`` the remote received, in the order first seen."""
    seen: dict[str, dict[str, Any]] = {}
    for update in remote.updates(None):
        if update.body["server"] == server:
            seen.setdefault(update.headers["idempotency-key"], update.body)
    return list(seen.values())


async def test_a_hanging_update_of_one_server_holds_back_no_other(
    remote: RemoteServer, make_sync: Any
) -> None:
    """Order is per server: with the remote hanging past the timeout on one server's updates,
    another server's updates still go out at once, each as soon as it is published."""
    remote.behaviour.hang_servers = {"stuck"}
    sync, bus = await make_sync(settings_for(remote.url, timeout="2s"))
    bus.publish(event("stuck", "Started"))
    await eventually(lambda: len(_bodies_of(remote, "stuck")) == 1)  # on the wire, unanswered
    began = time.monotonic()
    bus.publish(event("free", "Started"))
    await eventually(lambda: len(_bodies_of(remote, "free")) == 1, timeout=1.5)
    bus.publish(event("free", "Ready"))
    await eventually(lambda: len(_bodies_of(remote, "free")) == 2, timeout=1.5)
    assert time.monotonic() - began < 1.5, "waited behind the other server's timeout"
    assert [b["status"] for b in _bodies_of(remote, "free")] == ["installing", "ready"]
    await eventually(lambda: sync.snapshot().outbox_depth == 1, timeout=5)  # free: all acked
    # the stuck server keeps its own order: its first update is retried before its next
    bus.publish(event("stuck", "Ready"))
    remote.behaviour.hang_servers = set()
    await eventually(lambda: sync.snapshot().outbox_depth == 0, timeout=15)
    assert [b["status"] for b in _bodies_of(remote, "stuck")] == ["installing", "ready"]


async def test_the_gate_never_refuses_for_an_update_being_written(
    remote: RemoteServer, make_sync: Any
) -> None:
    """Issue 18: while the outbox commits an update (the commit releases the GIL), another
    thread asking the gate must not see that update as one that could not be written. FastAPI
    ran the API's gate dependency in its thread pool, and during an outage one action in
    about a thousand was refused with "the remote-sync outbox cannot be written (None)"."""
    remote.stop()
    sync, bus = await make_sync(settings_for(remote.url))
    refusals: list[str] = []
    asked = [0]
    done = threading.Event()

    def ask_the_gate() -> None:  # as a thread-pool dependency does, as often as it can
        while not done.is_set():
            reason = bus.refusal()
            asked[0] += 1
            if reason:
                refusals.append(reason)

    watcher = threading.Thread(target=ask_the_gate, name="gate-watcher")
    watcher.start()
    try:
        for n in range(300):
            bus.publish(event(f"s{n % 20}", "Started"))
    finally:
        done.set()
        watcher.join(timeout=10)
    assert asked[0] > 300  # the gate was asked throughout the writes, not once at the end
    assert refusals == [], refusals[:3]
    assert sync.snapshot().outbox_depth == 300
    assert sync.refusal() is None
