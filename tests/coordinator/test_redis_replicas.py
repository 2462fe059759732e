"""Several coordinator replicas, real processes, sharing one fleet through one real Redis."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from lightd_agent.security import new_dispatch_key, node_proof
from lightd_coordinator.config import Settings
from lightd_shared.dispatch import NODE_PROOF_HEADER
from tests.coordinator.harness import (
    AgentBehaviour,
    agent,
    coordinator,
    make_settings,
    node_body,
    sse,
)
from tests.coordinator.replicas import Replica, replica, replicas
from tests.harness.redis import RedisServer, redis_server
from tests.harness.wait import wait_until

COMMAND = {"type": "exec", "action": "echo hi", "params": {"timeout": "10s"}}


def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait until ``check`` holds (the harness's one polling helper, with this file's timeout)."""
    wait_until(check, timeout, interval=0.05, what=what)


def _events(server: RedisServer) -> list[tuple[int, str, str]]:
    """Every event in the shared log: (id, type, node id)."""
    client = redis_sync.Redis.from_url(server.url, decode_responses=True)
    try:
        return [
            (int(entry_id.split("-")[0]), fields["t"], fields["n"])
            for entry_id, fields in client.xrange("lightd:events")
        ]
    finally:
        client.close()


def test_register_on_a_read_on_b(tmp_path: Path, redis: RedisServer) -> None:
    with replicas(tmp_path, redis.url, 2) as (a, b), httpx.Client(timeout=10) as client:
        for i, labels in enumerate([{"env": "prod"}, {"env": "dev"}, {"env": "prod"}]):
            body = node_body(f"n{i}", 9000 + i, labels=labels)
            assert client.post(f"{a.url}/api/v1/nodes", json=body).status_code == 201
        node = client.get(f"{b.url}/api/v1/nodes/n1").json()
        assert node["labels"] == {"env": "dev"} and node["port"] == 9001
        prod = client.get(f"{b.url}/api/v1/nodes", params={"label": "env=prod"}).json()
        assert [n["id"] for n in prod["nodes"]] == ["n0", "n2"] and prod["count"] == 2
        page = client.get(f"{b.url}/api/v1/nodes", params={"limit": 1, "offset": 1}).json()
        assert [n["id"] for n in page["nodes"]] == ["n1"] and page["count"] == 3
        health = client.get(f"{b.url}/health").json()
        assert health["total_nodes"] == 3 and health["active_nodes"] == 3
        # a heartbeat on B, an update on A, a removal on B: every replica sees each
        beat = client.post(f"{b.url}/api/v1/nodes/n0/heartbeat", json={"status": "inactive"})
        assert beat.status_code == 200 and beat.json()["status"] == "inactive"
        assert client.get(f"{a.url}/api/v1/nodes/n0").json()["status"] == "inactive"
        listed = client.get(f"{a.url}/api/v1/nodes", params={"status": "active"}).json()
        assert [n["id"] for n in listed["nodes"]] == ["n1", "n2"]
        assert client.delete(f"{b.url}/api/v1/nodes/n2").status_code == 200
        assert client.get(f"{a.url}/api/v1/nodes/n2").status_code == 404
        # what a node pushes to the remote endpoint on A is read on B
        document = {"containers": [{"id": "web"}], "settings": {"a": 1}}
        pushed = client.post(f"{a.url}/api/v1/remote/n1/config", json=document)
        assert pushed.status_code == 200
        assert client.get(f"{b.url}/api/v1/remote/n1/config").json() == document


def test_subscriber_on_b_sees_events_caused_on_a(tmp_path: Path, redis: RedisServer) -> None:
    with (
        replicas(tmp_path, redis.url, 2) as (a, b),
        httpx.Client(timeout=10) as client,
        sse(b.url) as stream,
    ):
        first = stream.next_message()
        assert first.json()["type"] == "initial_state"
        client.post(f"{a.url}/api/v1/nodes", json=node_body("n1", 9001))
        client.post(f"{b.url}/api/v1/nodes", json=node_body("n2", 9002))
        one, two = stream.next_message(), stream.next_message()
        assert [one.json()["data"]["id"], two.json()["data"]["id"]] == ["n1", "n2"]
        # one sequence for all replicas: ids go up by one whichever replica published
        assert int(two.id or 0) == int(one.id or 0) + 1 == int(first.id or 0) + 2


def test_a_subscriber_resumes_on_b_when_a_dies(tmp_path: Path, redis: RedisServer) -> None:
    with replicas(tmp_path, redis.url, 2) as (a, b), httpx.Client(timeout=10) as client:
        seen: list[int] = []
        stop = threading.Event()

        def produce() -> None:
            i = 0
            while not stop.is_set():
                try:
                    client.post(f"{b.url}/api/v1/nodes", json=node_body(f"p{i}", 9000))
                except httpx.HTTPError:
                    pass
                i += 1
                time.sleep(0.01)  # the producer's pace: events keep coming while A dies

        producer = threading.Thread(target=produce, daemon=True)
        with sse(a.url) as stream:
            start = int(stream.next_message().id or 0)
            producer.start()
            for _ in range(20):
                seen.append(int(stream.next_message().id or 0))
            a.kill()
            try:  # whatever A had already sent before dying still counts
                while True:
                    seen.append(int(stream.next_message(timeout=2).id or 0))
            except (httpx.HTTPError, TimeoutError, StopIteration):
                pass
        with sse(b.url, headers={"Last-Event-ID": str(seen[-1])}) as stream:
            for _ in range(30):
                message = stream.next_message()
                assert message.json()["type"] == "node_registered"
                seen.append(int(message.id or 0))
        stop.set()
        producer.join(10)
        # nothing missed, nothing twice: every id from the first one on, in order
        assert seen == list(range(start + 1, start + 1 + len(seen)))


def test_the_sweep_survives_its_lease_holder(tmp_path: Path, redis: RedisServer) -> None:
    timers = {"health_check_interval": "200ms", "node_timeout": "3s"}
    store = redis_sync.Redis.from_url(redis.url, decode_responses=True)
    with replica(tmp_path, redis.url, "first", registry=timers) as first:
        eventually(lambda: store.get("lightd:lease:sweep") is not None, what="the sweep lease")
        holder = store.get("lightd:lease:sweep")
        with (
            replicas(tmp_path / "more", redis.url, 2, registry=timers) as others,
            httpx.Client(timeout=10) as client,
        ):
            ids = [f"n{i}" for i in range(20)]
            for node_id in ids:
                client.post(f"{others[0].url}/api/v1/nodes", json=node_body(node_id, 9000))
            first.kill()  # the holder dies before any node times out
            assert store.get("lightd:lease:sweep") == holder  # not yet expired

            def all_inactive() -> bool:
                listed = client.get(
                    f"{others[1].url}/api/v1/nodes", params={"status": "inactive"}
                ).json()
                return int(listed["count"]) == len(ids)

            eventually(all_inactive, timeout=20, what="every node inactive")
            assert store.get("lightd:lease:sweep") not in (None, holder)
            inactive = Counter(node for _, kind, node in _events(redis) if kind == "node_inactive")
            assert inactive == dict.fromkeys(ids, 1)  # once each, fleet-wide
    store.close()


def test_command_via_a_result_reported_to_b(tmp_path: Path, redis: RedisServer) -> None:
    with (
        agent(AgentBehaviour(accept_only=True)) as (fake, port),
        replicas(tmp_path, redis.url, 2) as (a, b),
        httpx.Client(timeout=30) as client,
    ):
        client.post(f"{a.url}/api/v1/nodes", json=node_body("n1", port))
        answer: dict[str, Any] = {}

        def wait_on_a() -> None:
            answer.update(client.post(f"{a.url}/api/v1/nodes/n1/commands", json=COMMAND).json())

        caller = threading.Thread(target=wait_on_a)
        caller.start()
        eventually(lambda: fake.count == 1, what="the command at the agent")
        command_id = fake.received[0]["id"]
        eventually(
            lambda: (
                client.get(f"{b.url}/api/v1/commands/{command_id}").json()["status"] == "running"
            ),
            what="the accepted command stored as running",
        )
        report = {"id": command_id, "node_id": "n1", "status": "success", "output": "done"}
        reported = client.post(f"{b.url}/api/v1/commands/{command_id}/result", json=report)
        assert reported.status_code == 200, reported.text
        caller.join(20)
        assert answer["id"] == command_id and answer["status"] == "success"
        assert answer["output"] == "done"
        for replica_ in (a, b):
            stored = client.get(f"{replica_.url}/api/v1/commands/{command_id}").json()
            assert stored["status"] == "success" and stored["output"] == "done"
        # first result wins: a second report, to either replica, is refused
        again = client.post(f"{a.url}/api/v1/commands/{command_id}/result", json=report)
        assert again.status_code == 409


def test_one_idempotency_key_through_a_then_b_runs_once(tmp_path: Path, redis: RedisServer) -> None:
    with (
        agent(AgentBehaviour(delay=0.5)) as (fake, port),
        replicas(tmp_path, redis.url, 2) as (a, b),
        httpx.Client(timeout=30) as client,
    ):
        client.post(f"{a.url}/api/v1/nodes", json=node_body("n1", port))
        headers = {"Idempotency-Key": "deploy-42"}
        answers: list[dict[str, Any]] = []

        def send(replica_: Replica) -> None:
            answers.append(
                client.post(
                    f"{replica_.url}/api/v1/nodes/n1/commands", json=COMMAND, headers=headers
                ).json()
            )

        first = threading.Thread(target=send, args=(a,))
        first.start()
        eventually(lambda: fake.count == 1, what="the first delivery")
        send(b)  # while A's delivery is still running
        first.join(20)
        send(b)  # and after it ended
        assert fake.count == 1
        assert len({answer["id"] for answer in answers}) == 1
        assert [answer["status"] for answer in answers] == ["success"] * 3


def test_a_heartbeat_is_one_redis_round_trip(tmp_path: Path, redis: RedisServer) -> None:
    store = redis_sync.Redis.from_url(redis.url, decode_responses=True)
    with (
        replica(tmp_path, redis.url, "a", registry={"health_check_interval": "1h"}) as a,
        httpx.Client(timeout=10) as client,
    ):
        client.post(f"{a.url}/api/v1/nodes", json=node_body("n1", 9000))
        client.post(f"{a.url}/api/v1/nodes/n1/heartbeat")  # warm: the script is loaded
        store.config_resetstat()
        for _ in range(10):
            assert client.post(f"{a.url}/api/v1/nodes/n1/heartbeat").status_code == 200
        stats = store.info("commandstats")
    store.close()
    calls = {name: int(value["calls"]) for name, value in stats.items()}
    # one script call per heartbeat (the commands inside it are counted too, ten each)...
    assert calls.get("cmdstat_evalsha") == 10
    assert calls.get("cmdstat_exists") == 10
    # ...and no read of the node besides it (the event log reader polls with xread and get)
    assert "cmdstat_hgetall" not in calls and "cmdstat_eval" not in calls


def test_a_new_node_is_one_redis_round_trip_and_its_activity_entry(
    tmp_path: Path, redis: RedisServer
) -> None:
    """Issue 17: a brand-new node's registration is one script (the node, its index keys and
    its node_registered event); its activity entry is the one other call."""
    store = redis_sync.Redis.from_url(redis.url, decode_responses=True)
    with (
        replica(tmp_path, redis.url, "a", registry={"health_check_interval": "1h"}) as a,
        httpx.Client(timeout=10) as client,
    ):
        client.post(f"{a.url}/api/v1/nodes", json=node_body("warm", 9000))  # scripts loaded
        store.config_resetstat()
        for n in range(10):
            answer = client.post(f"{a.url}/api/v1/nodes", json=node_body(f"n{n}", 9001 + n))
            assert answer.status_code == 201, answer.text
        stats = store.info("commandstats")
        entries = store.zcard("lightd:activity")
    store.close()
    calls = {name: int(value["calls"]) for name, value in stats.items()}
    # ten node scripts and ten activity scripts; inside them, ten events and their ids
    assert calls.get("cmdstat_evalsha") == 20
    assert calls.get("cmdstat_xadd") == 10
    assert calls.get("cmdstat_incr") == 20  # the event ids and the activity entries' ids
    assert "cmdstat_hgetall" not in calls and "cmdstat_eval" not in calls
    assert entries == 11
    kinds = Counter(event[1] for event in _events(redis))
    assert kinds["node_registered"] == 11


def test_redis_restarted_under_load(tmp_path: Path, redis: RedisServer) -> None:
    with replicas(tmp_path, redis.url, 2) as (a, b), httpx.Client(timeout=10) as client:
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def load() -> None:
            i = 0
            while not stop.is_set():
                target = (a, b)[i % 2].url
                i += 1
                try:
                    beat = client.post(f"{target}/api/v1/nodes/n1/heartbeat")
                    statuses[beat.status_code] += 1
                    if beat.status_code == 404:  # Redis came back empty: enrol again
                        statuses[
                            client.post(
                                f"{target}/api/v1/nodes", json=node_body("n1", 9000)
                            ).status_code
                        ] += 1
                    statuses[client.get(f"{target}/api/v1/nodes").status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1

        client.post(f"{a.url}/api/v1/nodes", json=node_body("n1", 9000))
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        eventually(lambda: statuses[200] > 20, what="load before the restart")
        redis.stop()
        for replica_ in (a, b):
            down = client.get(f"{replica_.url}/health")
            assert down.status_code == 503
            assert down.json()["status"] == "unhealthy"
            assert "redis" in down.json()["reason"].lower()
            refused = client.get(f"{replica_.url}/api/v1/nodes")
            assert refused.status_code == 503
            assert "cannot be reached" in refused.json()["detail"]
        eventually(lambda: statuses[503] > 5, what="503s while Redis is down")
        redis.start()
        before = statuses[200]
        for replica_ in (a, b):
            eventually(
                lambda r=replica_: client.get(f"{r.url}/health").status_code == 200,
                what=f"{replica_.name} healthy again",
            )
        eventually(lambda: statuses[200] > before + 20, what="load served again")
        stop.set()
        worker.join(15)
        assert client.get(f"{b.url}/api/v1/nodes/n1").status_code == 200
        assert statuses[500] == 0, statuses
        assert set(statuses) <= {0, 200, 201, 404, 503}, statuses
        # the events stream works again on both replicas
        with sse(b.url) as stream:
            assert stream.next_message().json()["type"] == "initial_state"
            client.post(f"{a.url}/api/v1/nodes", json=node_body("n9", 9009))
            assert stream.until("node_registered").json()["data"]["id"] == "n9"


def test_the_redis_password_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password in registry.redis_url: 503 with the URL masked, in answers and logs."""
    password = "not-the-password-8c1f2e"
    with redis_server(tmp_path, "--requirepass", "the-right-one-5d2a") as server:
        url = server.url.replace("redis://", f"redis://:{password}@")
        settings = make_settings(registry={"provider": "redis", "redis_url": url})
        assert password not in repr(settings)
        _refused_without_showing(settings, password)
    assert caplog.records and all(password not in r.getMessage() for r in caplog.records)


def _refused_without_showing(settings: Settings, password: str) -> None:
    with coordinator(settings) as (base, _), httpx.Client(base_url=base, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert "redis://***@127.0.0.1" in health.json()["reason"]
        listed = client.get("/api/v1/nodes")
        assert listed.status_code == 503 and "credentials" in listed.json()["detail"]
        for answer in (health, listed):
            assert password not in answer.text


def test_an_id_enrolled_on_a_cannot_be_taken_on_b(tmp_path: Path, redis: RedisServer) -> None:
    """Node proofs hold across replicas, and two hosts racing for one id cannot both win."""
    agent_token = "lightd_5f0e1d2c3b4a59687766554433221100"
    auth = {"enabled": True, "agent_token": agent_token, "jwt_secret": "x" * 32}
    keys = [new_dispatch_key(), new_dispatch_key()]

    def enrol(base: str, node_id: str, key: str) -> int:
        headers = {
            "Authorization": f"Bearer {agent_token}",
            NODE_PROOF_HEADER: node_proof(key, node_id, expires_in=60),
        }
        body = node_body(node_id, 9000, dispatch_key=key)
        return httpx.post(
            f"{base}/api/v1/nodes", json=body, headers=headers, timeout=10
        ).status_code

    with replicas(tmp_path, redis.url, 2, auth=auth, server={"auth_token": "o" * 32}) as (ra, rb):
        a, b = ra.url, rb.url
        assert enrol(a, "taken", keys[0]) == 201
        assert enrol(b, "taken", keys[1]) == 409  # another key: refused on the other replica
        assert enrol(b, "taken", keys[0]) == 200  # the holder of the key re-registers anywhere
        for round_ in range(5):
            node_id = f"raced-{round_}"
            codes: list[int] = []
            start = threading.Barrier(2)

            def race(
                base: str,
                key: str,
                node_id: str = node_id,
                codes: list[int] = codes,
                start: threading.Barrier = start,
            ) -> None:
                start.wait()
                codes.append(enrol(base, node_id, key))

            racers = [
                threading.Thread(target=race, args=(a, keys[0])),
                threading.Thread(target=race, args=(b, keys[1])),
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(20)
            assert sorted(codes) == [201, 409], codes
