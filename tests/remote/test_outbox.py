"""The SQLite outbox and the retry arithmetic, one module at a time."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

from lightd_agent.events import LifecycleEvent
from lightd_agent.remote.delivery import _GroupCommit
from lightd_agent.remote.journal import Journal
from lightd_agent.remote.mapping import update_body
from lightd_agent.remote.outbox import Outbox, PendingUpdate, encode_body
from lightd_agent.remote.retry import backoff_delay, retry_after_seconds
from lightd_shared.remote import RemoteSettings


def _body(server: str, status: str) -> dict[str, str]:
    return {"event": "update", "server": server, "status": status}


def test_sequences_are_per_server_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    assert outbox.enqueue("a", _body("a", "installing")) == 1
    assert outbox.enqueue("a", _body("a", "ready")) == 2
    assert outbox.enqueue("b", _body("b", "installing")) == 1
    for update in outbox.pending():
        outbox.acknowledge(update.id)
    outbox.close()

    reopened = Outbox(path)
    assert reopened.depth() == 0
    assert reopened.enqueue("a", _body("a", "installing")) == 3
    reopened.close()


def test_acknowledging_several_updates_deletes_them_and_each_server_reads_its_next(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.enqueue("a", _body("a", "installing"))
    outbox.enqueue("a", _body("a", "ready"))
    outbox.enqueue("a", _body("a", "running"))
    outbox.enqueue("b", _body("b", "installing"))
    outbox.acknowledge_many(outbox.due(now=10.0))
    assert [(u.server, u.seq) for u in outbox.pending()] == [("a", 2), ("a", 3)]
    assert [(u.seq, u.body["status"]) for u in outbox.first("a", 1)] == [(2, "ready")]
    assert [u.seq for u in outbox.first("a", 5)] == [2, 3]
    assert [u.seq for u in outbox.after("a", 2, 5)] == [3]
    assert outbox.first("b", 5) == []
    outbox.close()


def test_an_update_carries_its_body_as_stored_and_sent(tmp_path: Path) -> None:
    """``content`` is the compact JSON the outbox stored: the bytes delivery sends."""
    outbox = Outbox(tmp_path / "o.sqlite3")
    body = {"event": "update", "server": "a", "error": "failed", "data": 'caf\u00e9 "x"'}
    outbox.enqueue("a", body)
    [update] = outbox.pending()
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    try:
        [(stored,)] = db.execute("SELECT body FROM updates").fetchall()
    finally:
        db.close()
    assert update.content == stored.encode() == encode_body(body).encode()
    assert update.content == (
        b'{"event":"update","server":"a","error":"failed","data":"caf\\u00e9 \\"x\\""}'
    )
    assert update.body == body
    outbox.close()


class _CountingOutbox(Outbox):
    """The real outbox, noting how many acknowledgements each commit carried."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits: list[int] = []

    def acknowledge_many(self, updates: Collection[PendingUpdate]) -> None:
        self.commits.append(len(updates))
        super().acknowledge_many(updates)


def test_acknowledgements_that_arrive_together_share_one_commit(tmp_path: Path) -> None:
    """Twenty servers' workers acknowledging at once: one fsync, not twenty, and each worker
    returns only once its own deletion is committed."""
    outbox = _CountingOutbox(tmp_path / "o.sqlite3")
    servers = [f"s{n:02d}" for n in range(20)]
    for server in servers:
        outbox.enqueue(server, _body(server, "installing"))
        outbox.enqueue(server, _body(server, "ready"))

    async def drain_heads() -> list[list[tuple[str, int]]]:
        acks = _GroupCommit(outbox)

        async def acknowledge(update: PendingUpdate) -> list[tuple[str, int]]:
            await acks.acknowledge(update)
            return [(u.server, u.seq) for u in outbox.first(update.server, 5)]

        try:
            return await asyncio.gather(*(acknowledge(u) for u in outbox.due(now=10.0)))
        finally:
            await acks.close()

    following = asyncio.run(drain_heads())
    assert outbox.commits == [20]
    assert following == [[(s, 2)] for s in servers]
    assert [(u.server, u.seq) for u in outbox.pending()] == [(s, 2) for s in servers]
    outbox.close()


def test_only_the_head_of_each_server_is_due(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.enqueue("a", _body("a", "installing"), now=1.0)
    outbox.enqueue("a", _body("a", "ready"), now=2.0)
    outbox.enqueue("b", _body("b", "installing"), now=3.0)
    heads = outbox.due(now=10.0)
    assert [(u.server, u.seq) for u in heads] == [("a", 1), ("b", 1)]

    # A head waiting for its backoff holds back the rest of its server, not other servers.
    outbox.retry_later(heads[0].id, at=100.0, error="HTTP 500")
    assert [(u.server, u.seq) for u in outbox.due(now=10.0)] == [("b", 1)]
    assert outbox.next_attempt_at() == 0.0
    outbox.acknowledge(heads[1].id)
    assert outbox.next_attempt_at() == 100.0
    outbox.make_all_due(now=20.0)
    [head] = outbox.due(now=20.0)
    assert (head.server, head.seq, head.attempts) == ("a", 1, 1)
    assert outbox.oldest_created_at() == 1.0
    outbox.close()


def test_dead_letter_and_replay_keep_sequence_and_key(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.enqueue("a", _body("a", "installing"))
    [update] = outbox.pending()
    dead_id = outbox.dead_letter(update, status_code=404, reason="HTTP 404", now=5.0)
    assert outbox.depth() == 0
    [dead] = outbox.dead_letters()
    assert (dead.id, dead.sequence, dead.idempotency_key) == (dead_id, 1, update.idempotency_key)
    assert dead.failed_at == datetime.fromtimestamp(5.0, UTC)
    assert outbox.replay(dead_id)
    [again] = outbox.pending()
    assert (again.seq, again.idempotency_key, again.body) == (
        1,
        update.idempotency_key,
        update.body,
    )
    assert outbox.dead_letter_count() == 0
    assert not outbox.replay(dead_id)
    assert not outbox.discard_dead_letter(dead_id)
    outbox.close()


def test_outbox_uses_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    Outbox(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=0.5, cap=8.0, rng=rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert 2.0 <= delays[3] <= 4.0
    assert all(4.0 <= d <= 8.0 for d in delays[5:])
    assert backoff_delay(10_000, base=0.5, cap=8.0, rng=rng) <= 8.0


def test_retry_after_in_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 13, 18, 17, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Tue, 13 Jan 2026 18:17:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Tue, 13 Jan 2026 18:16:30 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_error_without_details_still_has_the_error_body() -> None:
    event = LifecycleEvent(server="s", kind="Error", state="failed")
    assert update_body(event, "seed") == {
        "event": "update",
        "server": "s",
        "error": "failed",
        "data": "",
    }
    timeout = LifecycleEvent(server="s", kind="Error", state="failed", error="timeout", data="x")
    assert update_body(timeout, "all") == {
        "event": "update",
        "server": "s",
        "error": "timeout",
        "data": "x",
    }


def test_the_gate_opens_as_soon_as_an_acknowledgement_ends_a_full_outbox(tmp_path: Path) -> None:
    """The acknowledgements' commit runs in its own thread and tells the journal on the loop
    afterwards; in between, ``/health`` (which counts live) already said "not full" while the
    gate still refused actions (CI saw it once: tests/remote/test_sync.py). The gate reads the
    bound again while it thinks the outbox is full."""
    token = "lightd_" + "0" * 32
    settings = RemoteSettings.model_validate(
        {"enabled": True, "url": "http://127.0.0.1:9", "token": token, "outbox_limit": 2}
    )
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    journal = Journal(outbox, lambda: settings, tmp_path, lambda: None)
    for number in (1, 2):  # two updates the seed's mapping sends ("ready")
        journal.record(LifecycleEvent(server="s1", kind="Ready", state="ready", id=number))
    reason = journal.refusal()
    assert reason is not None and "outbox is full (2 undelivered updates" in reason
    # what the acknowledgements' thread does, before its callback reaches check_bound
    outbox.acknowledge_many(outbox.pending()[:1])
    assert journal.refusal() is None
    assert not journal.full
    outbox.close()
