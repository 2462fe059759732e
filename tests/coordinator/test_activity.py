"""The activity log: who did what through the coordinator, kept bounded, never with a secret.

API tests run on the default registry (memory; redis when ``LIGHTD_TEST_REDIS_URL`` is set, as
the second coordinator run of CI does); the store tests run on memory, sqlite and a real Redis
each, with an injected clock for retention (no waiting).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from lightd_coordinator.activity import (
    ActivityLog,
    ActivityStore,
    MemoryActivityStore,
    SqliteActivityStore,
)
from lightd_coordinator.activity.context import Note
from lightd_coordinator.activity.redis import RedisActivityStore
from lightd_coordinator.config import ActivitySettings, Settings
from lightd_coordinator.registry.base import RegistryUnavailable
from lightd_shared.activity import ActivityQuery, shell_summary
from lightd_shared.commands import CommandResult
from tests.coordinator.harness import SECRET, STATIC, agent, coordinator, make_settings
from tests.coordinator.replicas import replicas
from tests.harness.redis import RedisServer
from tests.harness.registration import node_body, register
from tests.harness.servers import free_port
from tests.harness.wait import wait_until

AUTH = {"Authorization": f"Bearer {STATIC}"}
T0 = datetime(2026, 1, 13, 18, 0, tzinfo=UTC)
ENV_SECRET = "env-secret-value-9f8e7d6c5b4a"
SHELL_SECRET = "shell-secret-hunter2-0a1b2c"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _auth_settings(**sections: dict[str, Any]) -> Settings:
    return make_settings(auth={"enabled": True}, **sections)


def _activity(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/activity", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _only(client: httpx.Client, **params: Any) -> dict[str, Any]:
    entries = _activity(client, **params)["entries"]
    assert len(entries) == 1, entries
    entry: dict[str, Any] = entries[0]
    return entry


# -- through the API -------------------------------------------------------------------------
def test_mutating_calls_are_recorded_with_the_token_subject() -> None:
    with (
        coordinator(_auth_settings()) as (base, _),
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
    ):
        node = f"act-{uuid.uuid4().hex[:6]}"
        registered = client.post(
            "/api/v1/nodes", json=node_body(node, 9), headers={"X-Request-ID": "req-42"}
        )
        assert registered.status_code == 201
        assert registered.headers["x-request-id"] == "req-42"
        entry = _only(client, action="node.register")
        assert entry["kind"] == "request" and entry["outcome"] == "201"
        assert entry["user"] == entry["subject"] == "static-token"
        assert entry["node"] == node and entry["request_id"] == "req-42"
        assert entry["method"] == "POST" and entry["route"] == "/api/v1/nodes"

        # heartbeats are left out (they would flood the log); a PUT is in
        assert client.post(f"/api/v1/nodes/{node}/heartbeat").status_code == 200
        assert client.put(f"/api/v1/nodes/{node}", json={"name": "renamed"}).status_code == 200
        assert [e["action"] for e in _activity(client)["entries"]] == [
            "node.update",
            "node.register",
        ]

        # a JWT's subject, and the token operation itself (never the token)
        minted = client.post("/api/v1/auth/token")
        assert minted.status_code == 200
        jwt = minted.json()["access_token"]
        issued = _only(client, action="token.issue")
        assert issued["user"] == "static-token" and issued["outcome"] == "200"
        gone = client.delete(f"/api/v1/nodes/{node}", headers={"Authorization": f"Bearer {jwt}"})
        assert gone.status_code == 200
        unregister = _only(client, action="node.unregister")
        assert unregister["subject"] == "api-client" and unregister["node"] == node
        # a refusal once the caller is known is recorded with its status
        missing = client.delete(f"/api/v1/nodes/{node}")
        assert missing.status_code == 404
        assert _only(client, action="node.unregister", outcome="404")["user"] == "static-token"

        # a call without a (valid) token is not: anyone could flood the log with those
        before = len(_activity(client)["entries"])
        anonymous = httpx.post(f"{base}/api/v1/nodes", json=node_body("intruder", 9))
        assert anonymous.status_code == 401
        wrong = httpx.delete(f"{base}/api/v1/nodes/x", headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        assert len(_activity(client)["entries"]) == before
        assert jwt not in json.dumps(_activity(client))

        # reading the log needs a token, as every route but /health
        assert httpx.get(f"{base}/api/v1/activity").status_code == 401


def test_a_dispatch_is_recorded_with_the_seeds_user() -> None:
    with (
        agent() as (fake, port),
        coordinator(_auth_settings()) as (base, _),
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
    ):
        node = f"disp-{uuid.uuid4().hex[:6]}"
        register(client, node, port)
        command = {
            "type": "exec",
            "action": f"echo {SHELL_SECRET}",
            "params": {"timeout": "10s"},
            "user": "developer",
        }
        result = client.post(f"/api/v1/nodes/{node}/commands", json=command)
        assert result.status_code == 200 and result.json()["status"] == "success"
        request_id = result.headers["x-request-id"]

        done = _only(client, kind="command")
        assert done["user"] == "developer" and done["subject"] == "static-token"
        assert done["action"] == "exec" and done["outcome"] == "success"
        assert done["node"] == node and done["command_id"] == result.json()["id"]
        assert done["request_id"] == request_id
        # the shell text is summarised, never kept
        assert done["shell"] == shell_summary(command["action"]).model_dump()
        assert done["shell"]["program"] == "echo"
        asked = _only(client, action="command.dispatch")
        assert asked["user"] == "developer" and asked["outcome"] == "200"
        assert asked["request_id"] == request_id
        # the user filter finds both: the command's user, or the token's subject
        assert len(_activity(client, user="developer")["entries"]) == 2
        assert len(_activity(client, user="static-token")["entries"]) == 3

        # a command that fails is recorded with its status, a container action with its server
        fake.behaviour.result_status = "failed"
        power = client.post(f"/api/v1/nodes/{node}/containers/web-1/restart")
        assert power.status_code == 200 and power.json()["status"] == "failed"
        restart = _only(client, kind="command", action="container.restart")
        assert restart["outcome"] == "failed" and restart["server"] == "web-1"
        assert restart["user"] == "static-token"
        sugar = _only(client, kind="request", action="container.restart")
        assert sugar["server"] == "web-1" and sugar["node"] == node
        # a read-only command is recorded too (activity.record_reads, on by default)
        assert client.get(f"/api/v1/nodes/{node}/containers").status_code == 200
        listed = wait_until(
            lambda: _activity(client, action="container.list")["entries"], what="the list entry"
        )
        assert listed[0]["kind"] == "command" and listed[0]["node"] == node
        assert SHELL_SECRET not in json.dumps(_activity(client, limit=1000))


def test_filters_and_paging() -> None:
    with (
        coordinator(_auth_settings()) as (base, _),
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
    ):
        tag = uuid.uuid4().hex[:6]
        ids = [f"page-{tag}-{i}" for i in range(7)]
        for node in ids:
            register(client, node)
        assert client.delete(f"/api/v1/nodes/{ids[0]}").status_code == 200
        assert client.delete(f"/api/v1/nodes/{ids[0]}").status_code == 404

        # newest first, in pages of 3 until next_before is null
        seen: list[dict[str, Any]] = []
        page = _activity(client, limit=3)
        while True:
            assert len(page["entries"]) <= 3
            seen += page["entries"]
            if page["next_before"] is None:
                break
            assert page["next_before"] == page["entries"][-1]["id"]
            page = _activity(client, limit=3, before=page["next_before"])
        assert len(seen) == 9
        assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
        assert [e["node"] for e in seen[2:]] == list(reversed(ids))

        assert [e["outcome"] for e in _activity(client, node=ids[0])["entries"]] == [
            "404",
            "200",
            "201",
        ]
        assert len(_activity(client, action="node.*")["entries"]) == 9
        assert len(_activity(client, action="node.unregister")["entries"]) == 2
        assert len(_activity(client, outcome="2xx")["entries"]) == 8
        assert _only(client, outcome="4xx")["node"] == ids[0]
        assert len(_activity(client, kind="request", user="static-token")["entries"]) == 9
        assert _activity(client, user="nobody")["entries"] == []
        assert len(_activity(client, since="1h")["entries"]) == 9
        assert len(_activity(client, since="0001-01-01T00:00:00Z")["entries"]) == 9
        assert _activity(client, until="1h")["entries"] == []
        newest = seen[0]["time"]
        assert _only(client, since=newest)["id"] == seen[0]["id"]

        for params, where in [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"before": 0}, "before"),
            ({"before": 2**63}, "before"),
            ({"since": "100000000h"}, "since"),
            ({"since": "yesterday"}, "since"),
            ({"until": "2026-13-01T00:00:00Z"}, "until"),
            ({"outcome": "4xx; DROP"}, "outcome"),
            ({"kind": "other"}, "kind"),
            ({"since": "1h", "until": "2h"}, None),
        ]:
            refused = client.get("/api/v1/activity", params=params)
            assert refused.status_code == 422, (params, refused.text)
            detail = refused.json()["detail"]
            assert detail and detail[0]["msg"], detail
            if where is not None:
                assert detail[0]["loc"][-1] == where, detail


def test_two_redis_replicas_share_one_log(tmp_path: Path, redis: RedisServer) -> None:
    """What one replica records, the other reads; ids increase across both."""
    with replicas(tmp_path, redis.url, 2) as (a, b), httpx.Client(timeout=10) as client:
        assert client.post(f"{a.url}/api/v1/nodes", json=node_body("s1", 9)).status_code == 201
        assert client.post(f"{b.url}/api/v1/nodes", json=node_body("s2", 9)).status_code == 201
        on_a = client.get(f"{a.url}/api/v1/activity").json()["entries"]
        on_b = client.get(f"{b.url}/api/v1/activity").json()["entries"]
        assert on_a == on_b
        assert [e["node"] for e in on_a] == ["s2", "s1"]
        assert on_a[0]["id"] > on_a[1]["id"]


# -- the stores, each provider -------------------------------------------------------------
StoreFactory = Callable[[], ActivityStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A fresh store of each provider (redis: a real redis-server; missing, the test fails)."""
    if request.param == "memory":
        return MemoryActivityStore
    if request.param == "sqlite":
        return lambda: SqliteActivityStore(tmp_path / "activity.db")
    server: RedisServer = request.getfixturevalue("redis")
    return lambda: RedisActivityStore(server.url, prefix="test:")


def _log(store: ActivityStore, clock: Clock, **settings: Any) -> ActivityLog:
    return ActivityLog(store, ActivitySettings(**{"retention": "24h", **settings}), clock=clock)


async def _request(log: ActivityLog, node: str, status: int = 201, subject: str = "ops") -> None:
    await log.request(
        Note(request_id=uuid.uuid4().hex[:8], subject=subject),
        method="POST",
        route="/api/v1/nodes",
        action="node.register",
        status=status,
        params={"node_id": node},
    )


def test_retention_and_the_count_bound(make_store: StoreFactory) -> None:
    async def run() -> None:
        store = make_store()
        await store.open()
        try:
            clock = Clock(T0)
            log = _log(store, clock, max_entries=10)
            for hour in range(30):  # one entry an hour, over thirty hours
                clock.now = T0 + timedelta(hours=hour)
                await _request(log, f"n{hour}")
            # the count bound held at every append: the newest ten
            page = await log.read(ActivityQuery(limit=100))
            assert [e.node for e in page.entries] == [f"n{h}" for h in range(29, 19, -1)]
            assert page.next_before is None

            # retention (1 day) counts from the injected clock: nothing waits
            clock.now = T0 + timedelta(hours=48)
            assert await log.expire() == 4  # hours 20..23 are older than a day
            kept = await log.read(ActivityQuery(limit=100))
            assert [e.node for e in kept.entries] == [f"n{h}" for h in range(29, 23, -1)]
            clock.now = T0 + timedelta(days=10)
            assert await log.expire() == 6
            assert (await log.read(ActivityQuery())).entries == []
            # ids keep growing after a purge (a cursor never points at a newer entry)
            await _request(log, "later")
            later = (await log.read(ActivityQuery())).entries
            assert later[0].node == "later" and later[0].id > 30
        finally:
            await store.close()

    asyncio.run(run())


def test_entries_that_arrive_together_are_written_together(make_store: StoreFactory) -> None:
    """Group commit (issue 17): forty requests ending at once are fewer store calls on a
    grouped store (redis: one script call, sqlite: one transaction each), every entry is
    stored by the time its caller returns, ids in arrival order, the bound kept."""

    async def run() -> None:
        store = make_store()
        calls: list[int] = []  # the entries each store call took
        append_many, append = store.append_many, store.append

        async def counted_many(drafts: list[dict[str, Any]], *, keep: int) -> list[int]:
            calls.append(len(drafts))
            return await append_many(drafts, keep=keep)

        async def counted_one(draft: dict[str, Any], *, keep: int) -> int:
            calls.append(1)
            return await append(draft, keep=keep)

        # count, then the real call (a grouped store's append is its append_many)
        if store.grouped:
            store.append_many = counted_many  # type: ignore[method-assign]
        else:
            store.append = counted_one  # type: ignore[method-assign]
        await store.open()
        try:
            log = _log(store, Clock(T0), max_entries=30)

            async def one(n: int) -> None:
                await _request(log, f"n{n}")
                # stored before its caller goes on: it is on the page right now
                page = await log.read(ActivityQuery(node=f"n{n}"))
                assert [e.node for e in page.entries] == [f"n{n}"] or n < 10

            await asyncio.gather(*(one(n) for n in range(40)))
            assert sum(calls) == 40 and log.dropped == 0
            if store.grouped:
                assert len(calls) < 40  # one call took every entry queued while it waited
            else:
                assert calls == [1] * 40
            entries = (await log.read(ActivityQuery(limit=100))).entries
            assert [e.node for e in entries] == [f"n{n}" for n in range(39, 9, -1)]
            assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_group_that_cannot_be_written_is_dropped_whole() -> None:
    """Redis gone under concurrent requests: every one answers, each entry counted once."""

    async def run() -> None:
        store = RedisActivityStore(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
        calls: list[int] = []
        append_many = store.append_many

        async def counted(drafts: list[dict[str, Any]], *, keep: int) -> list[int]:
            calls.append(len(drafts))
            return await append_many(drafts, keep=keep)

        store.append_many = counted  # type: ignore[method-assign]  # counts, then the real one
        await store.open()
        try:
            log = _log(store, Clock(T0))
            await asyncio.gather(*(_request(log, f"n{n}") for n in range(12)))
            assert calls == [12] and log.dropped == 12  # one write of all twelve, failed
        finally:
            await store.close()

    asyncio.run(run())


def test_a_writer_cancelled_at_shutdown_lets_every_caller_go_on(tmp_path: Path) -> None:
    """The group writer cancelled (the loop shutting down) before or while it writes: its
    callers go on, their entries counted dropped, and a later entry is written again."""

    async def run() -> None:
        store = SqliteActivityStore(tmp_path / "activity.db")
        await store.open()
        try:
            log = _log(store, Clock(T0))
            for steps in (0, 1):  # cancelled before its first step, then inside its write
                waiting = [asyncio.create_task(_request(log, f"n{n}")) for n in range(3)]
                await asyncio.sleep(0)  # one loop step: the entries queued, the writer made
                (writer,) = [t for t in asyncio.all_tasks() if t.get_name() == "activity-writer"]
                for _ in range(steps):
                    await asyncio.sleep(0)  # the writer's first step: its write begins
                writer.cancel()
                await asyncio.wait_for(asyncio.gather(*waiting), 10)
                assert writer.cancelled()
            assert log.dropped == 6
            await asyncio.wait_for(_request(log, "later"), 10)
            entries = (await log.read(ActivityQuery())).entries
            assert [e.node for e in entries][:1] == ["later"] and log.dropped == 6
        finally:
            await store.close()

    asyncio.run(run())


def test_every_store_filters_and_pages_alike(make_store: StoreFactory) -> None:
    async def run() -> None:
        store = make_store()
        await store.open()
        try:
            clock = Clock(T0)
            log = _log(store, clock, retention="720h")
            for i in range(1200):  # past a store's read batch (500)
                clock.now = T0 + timedelta(seconds=i)
                await _request(log, "busy" if i % 2 else "calm", status=201 if i % 3 else 404)
            clock.now = T0 + timedelta(hours=1)
            await _request(log, "calm", subject="someone-else")

            first = await log.read(ActivityQuery(node="busy", limit=250))
            assert len(first.entries) == 250 and first.next_before == first.entries[-1].id
            rest = await log.read(ActivityQuery(node="busy", limit=1000, before=first.next_before))
            assert len(rest.entries) == 350 and rest.next_before is None
            assert all(e.node == "busy" for e in first.entries + rest.entries)

            only = await log.read(ActivityQuery(user="someone-else"))
            assert [e.subject for e in only.entries] == ["someone-else"]
            missing = await log.read(ActivityQuery(outcome="4xx", node="calm", limit=1000))
            assert len(missing.entries) == 200
            window = ActivityQuery(
                since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=19), limit=1000
            )
            assert [e.time.second for e in (await log.read(window)).entries] == list(
                range(19, 9, -1)
            )
            assert (await log.read(ActivityQuery(action="container.*"))).entries == []
            assert len((await log.read(ActivityQuery(action="node.*", limit=5))).entries) == 5
        finally:
            await store.close()

    asyncio.run(run())


def _store_contents(store: ActivityStore) -> str:
    """Everything the activity store holds, as text, to grep for secrets."""
    if isinstance(store, MemoryActivityStore):
        return repr(store.__dict__)
    if isinstance(store, SqliteActivityStore):
        # every row and column of its table (the file also holds the registry's own tables)
        with closing(sqlite3.connect(store.path)) as conn:
            return "\n".join(repr(row) for row in conn.execute("SELECT * FROM activity"))
    assert isinstance(store, RedisActivityStore)
    client = redis_sync.Redis.from_url(store.url, decode_responses=True)
    try:
        found = []
        for key in client.scan_iter(f"{store.prefix}*"):
            kind = client.type(key)
            if kind == "zset":
                found += client.zrange(key, 0, -1)
            elif kind == "string":
                found.append(str(client.get(key)))
            else:
                found.append(f"{key}:{kind}")
        return "\n".join(found)
    finally:
        client.close()


def test_no_secret_is_stored(make_store: StoreFactory) -> None:
    """A spec with an env secret, a shell secret, a token: none of them reaches the store."""
    token = f"Bearer {STATIC}"

    async def run() -> None:
        store = make_store()
        await store.open()
        try:
            log = _log(store, Clock(T0))
            note = Note(request_id="r1", subject="static-token")
            spec = {"id": "web-1", "image": "busybox", "env": {"DB_PASSWORD": ENV_SECRET}}
            await log.command(
                CommandResult.model_validate(
                    {
                        "id": "cmd_1_n1",
                        "node_id": "n1",
                        "command": {
                            "type": "container",
                            "action": "create",
                            "params": {"spec": spec},
                            "user": "developer",
                        },
                        "status": "success",
                        "output": f"created with {ENV_SECRET}",
                    }
                ),
                note,
            )
            for action, params in [
                (f"mysql -p{SHELL_SECRET} -e 'select 1'", {}),
                ("exec", {"server": "web-1", "command": ["sh", "-c", f"echo {SHELL_SECRET}"]}),
            ]:
                await log.command(
                    CommandResult.model_validate(
                        {
                            "id": f"cmd_{len(action)}_n1",
                            "node_id": "n1",
                            "command": {
                                "type": "exec" if params == {} else "container",
                                "action": action,
                                "params": params,
                            },
                            "status": "success",
                            "output": SHELL_SECRET,
                        }
                    ),
                    note,
                )
            for action in ("files.write", "files.read"):  # a read is recorded too, by default
                await log.command(
                    CommandResult.model_validate(
                        {
                            "id": f"cmd_{action}_n1",
                            "node_id": "n1",
                            "command": {
                                "type": "container",
                                "action": action,
                                "params": {
                                    "server": "web-1",
                                    "path": "config/.env",
                                    "content": f"DB_PASSWORD={ENV_SECRET}",
                                },
                            },
                            "status": "success",
                        }
                    ),
                    note,
                )
            entries = (await log.read(ActivityQuery())).entries
            assert [e.action for e in entries] == [
                "files.read",
                "files.write",
                "container.exec",
                "exec",
                "container.create",
            ]
            assert entries[0].server == entries[1].server == "web-1"
            entries = entries[2:]
            assert entries[2].server == "web-1" and entries[2].user == "developer"
            assert entries[1].shell is not None and entries[1].shell.program == "mysql"
            contents = _store_contents(store)
            assert "web-1" in contents  # the grep reads the real contents
            for secret in (ENV_SECRET, SHELL_SECRET, STATIC, token, SECRET):
                assert secret not in contents
        finally:
            await store.close()

    asyncio.run(run())


def test_no_secret_reaches_the_store_through_the_api(tmp_path: Path) -> None:
    """The same through a real coordinator on sqlite (the activity table is grepped whole)."""
    settings = _auth_settings(registry={"provider": "sqlite", "path": str(tmp_path / "c.db")})
    with (
        agent() as (_, port),
        coordinator(settings) as (base, app),
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
    ):
        register(client, "n1", port, dispatch_key="k" * 32)
        spec = {"id": "web-1", "image": "busybox", "env": {"DB_PASSWORD": ENV_SECRET}}
        created = client.post("/api/v1/nodes/n1/containers?token=leak", json=spec)
        assert created.status_code == 200, created.text
        ran = client.post(
            "/api/v1/nodes/n1/containers/web-1/exec",
            json={"command": f"echo {SHELL_SECRET}", "timeout": "5s"},
        )
        assert ran.status_code == 200, ran.text
        expected = [
            "container.exec",
            "container.exec",
            "container.create",
            "container.create",
            "node.register",
        ]
        # a command's own entry is written with its final result, just after the answer left
        actions = wait_until(
            lambda: (a := [e["action"] for e in _activity(client)["entries"]]) == expected and a,
            10,
            what="the five entries",
        )
        assert actions == expected
        store = app.state.coordinator.activity.store
        assert isinstance(store, SqliteActivityStore)
        contents = _store_contents(store)
        assert "web-1" in contents
        for secret in (ENV_SECRET, SHELL_SECRET, STATIC, "k" * 32, "leak"):
            assert secret not in contents


def test_an_unwritable_store_never_fails_a_request() -> None:
    """Redis gone: the call still answers (the entry is dropped and counted, logged once)."""
    url = f"redis://:pw-s3cret@127.0.0.1:{free_port()}/0"

    async def run() -> None:
        store = RedisActivityStore(url, timeout=1)
        await store.open()
        try:
            log = _log(store, Clock(T0))
            await _request(log, "n1")
            await _request(log, "n2")
            assert log.dropped == 2
            with pytest.raises(RegistryUnavailable) as raised:
                await log.read(ActivityQuery())
            assert "pw-s3cret" not in str(raised.value)
        finally:
            await store.close()

    asyncio.run(run())


def test_the_log_can_be_turned_off() -> None:
    with (
        coordinator(_auth_settings(activity={"enabled": False})) as (base, _),
        httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
    ):
        register(client, "off-1")
        assert _activity(client)["entries"] == []


@pytest.fixture
def _cli_coordinator() -> Iterator[str]:
    with coordinator(_auth_settings()) as (base, _):
        yield base


def test_the_activity_verb_prints_a_table(
    _cli_coordinator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightd_coordinator.cli import main

    base = _cli_coordinator
    with httpx.Client(base_url=base, headers=AUTH) as client:
        register(client, "cli-1")
        register(client, "cli-2")
    argv = ["activity", "--url", base, "--token", STATIC]
    assert main([*argv, "--node", "cli-1", "--user", "static-token", "--since", "1h"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["TIME", "USER", "NODE", "SERVER", "ACTION", "OUTCOME", "REQUEST"]
    assert len(lines) == 2
    assert lines[1].split()[1:6] == ["static-token", "cli-1", "-", "node.register", "201"]

    assert main([*argv, "--limit", "1", "--all", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert [e["node"] for e in entries] == ["cli-2", "cli-1"]

    assert main([*argv, "--user", "nobody"]) == 0
    assert capsys.readouterr().out.strip() == "no activity matches"
    # a bad filter is the coordinator's 422, said plainly, and a failure
    assert main([*argv, "--since", "yesterday"]) != 0
    assert "since" in capsys.readouterr().err


def test_reads_are_recorded_unless_switched_off() -> None:
    """Every dispatched command is recorded; ``record_reads: false`` leaves the reads out."""

    def result(action: str) -> CommandResult:
        return CommandResult.model_validate(
            {
                "id": f"cmd_{action}_n1",
                "node_id": "n1",
                "command": {"type": "container", "action": action, "params": {"server": "s1"}},
                "status": "success",
            }
        )

    async def run(record_reads: bool) -> list[str]:
        store = MemoryActivityStore()
        await store.open()
        log = _log(store, Clock(T0), record_reads=record_reads)
        for action in ("list", "quota.get", "backup.list", "schedules.list", "start"):
            await log.command(result(action), None)
        entries = (await log.read(ActivityQuery())).entries
        await store.close()
        return [e.action for e in reversed(entries)]

    assert asyncio.run(run(True)) == [
        "container.list",
        "container.quota.get",
        "container.backup.list",
        "container.schedules.list",
        "container.start",
    ]
    assert asyncio.run(run(False)) == ["container.start"]
