"""The event stream at /ws over real HTTP: ids, envelope, pings, resume, filters, slow clients."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from tests.coordinator.harness import coordinator, make_settings, sse
from tests.harness.registration import register
from tests.harness.wait import wait_until


def test_initial_state_then_numbered_events_without_event_names() -> None:
    with coordinator() as (base, _), sse(base) as stream:
        first = stream.next_message()
        assert first.event is None
        assert first.id == "0"  # no event yet
        envelope = first.json()
        assert set(envelope) == {"type", "timestamp", "data"}
        assert envelope["type"] == "initial_state"
        assert envelope["data"]["nodes"] == []
        assert envelope["data"]["last_event_id"] == 0

        register(base, "n1")
        register(base, "n1")  # again: an update
        httpx.delete(f"{base}/api/v1/nodes/n1")
        got = [stream.next_message() for _ in range(3)]
        assert [m.id for m in got] == ["1", "2", "3"]
        assert all(m.event is None for m in got)
        assert [m.json()["type"] for m in got] == [
            "node_registered",
            "node_updated",
            "node_unregistered",
        ]
        assert got[0].json()["data"]["id"] == "n1"
        assert got[0].json()["timestamp"].endswith("Z")


def test_initial_state_carries_the_newest_event_it_contains() -> None:
    with coordinator() as (base, _):
        register(base, "a")
        register(base, "b")
        with sse(base) as stream:
            first = stream.next_message()
            assert first.id == "2"
            data = first.json()["data"]
            assert [n["id"] for n in data["nodes"]] == ["a", "b"]
            assert data["last_event_id"] == 2
            register(base, "c")
            assert stream.next_message().id == "3"


def test_keep_alive_comments_every_ping_period() -> None:
    settings = make_settings(websocket={"ping_period": "100ms"})
    with coordinator(settings) as (base, _), sse(base, read=2) as stream:
        stream.next_message()
        register(base, "x")  # the reader returns only with data; collect pings meanwhile
        deadline = time.monotonic() + 5
        while len(stream.comments) < 3 and time.monotonic() < deadline:
            try:
                stream.next_message(timeout=0.5)
            except (TimeoutError, httpx.ReadTimeout):
                pass
        assert len(stream.comments) >= 3
        assert all(c.startswith("ping") for c in stream.comments)


def test_stream_outlives_read_and_write_timeouts() -> None:
    settings = make_settings(
        server={"read_timeout": "200ms", "write_timeout": "200ms"},
        websocket={"ping_period": "100ms"},
    )
    with coordinator(settings) as (base, _), sse(base, read=2) as stream:
        stream.next_message()
        # idle for five read/write timeouts: the idle time IS what this test is about
        time.sleep(1.0)
        register(base, "late")
        message = stream.until("node_registered")
        assert message.json()["data"]["id"] == "late"


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_after_disconnect_gets_exactly_the_missed_events(how: str) -> None:
    with coordinator() as (base, _):
        with sse(base) as stream:
            stream.next_message()
            register(base, "a")
            seen = stream.next_message()
            assert seen.id == "1"
        # disconnected: these are missed
        register(base, "b")
        register(base, "c")
        headers = {"Last-Event-ID": "1"} if how == "header" else {}
        path = "/ws" if how == "header" else "/ws?last_event_id=1"
        with sse(base, path, headers=headers) as stream:
            got = [stream.next_message() for _ in range(2)]
            assert [m.id for m in got] == ["2", "3"]
            assert [m.json()["data"]["id"] for m in got] == ["b", "c"]
            register(base, "d")
            assert stream.next_message().id == "4"


def test_resume_at_the_newest_id_sends_nothing_old() -> None:
    with coordinator() as (base, _):
        register(base, "a")
        with sse(base, headers={"Last-Event-ID": "1"}) as stream:
            register(base, "b")
            message = stream.next_message()
            assert message.id == "2"
            assert message.json()["type"] == "node_registered"


def test_resume_older_than_history_gets_a_fresh_initial_state() -> None:
    settings = make_settings(websocket={"history_size": 3})
    with coordinator(settings) as (base, _):
        for i in range(6):
            register(base, f"n{i}")
        with sse(base, headers={"Last-Event-ID": "1"}) as stream:
            first = stream.next_message()
            assert first.json()["type"] == "initial_state"
            assert first.id == "6"
            assert len(first.json()["data"]["nodes"]) == 6
        # still inside the history: a plain resume
        with sse(base, headers={"Last-Event-ID": "4"}) as stream:
            got = [stream.next_message() for _ in range(2)]
            assert [m.id for m in got] == ["5", "6"]


def test_resume_from_an_id_never_issued_gets_initial_state() -> None:
    with coordinator() as (base, _), sse(base, headers={"Last-Event-ID": "99"}) as stream:
        first = stream.next_message()
        assert first.json()["type"] == "initial_state"
        assert first.id == "0"


def test_filters_by_type_and_node() -> None:
    with coordinator() as (base, _):
        with (
            sse(base, "/ws?types=node_updated") as by_type,
            sse(base, "/ws?node=b") as by_node,
        ):
            by_type.next_message()  # initial_state
            initial = by_node.next_message()
            assert initial.json()["data"]["nodes"] == []
            register(base, "a")
            register(base, "b")
            register(base, "a")
            register(base, "b")
            updated = [by_type.next_message() for _ in range(2)]
            assert [m.json()["type"] for m in updated] == ["node_updated", "node_updated"]
            assert [m.json()["data"]["id"] for m in updated] == ["a", "b"]
            assert [m.id for m in updated] == ["3", "4"]
            about_b = [by_node.next_message() for _ in range(2)]
            assert [m.json()["data"]["id"] for m in about_b] == ["b", "b"]
            assert [m.id for m in about_b] == ["2", "4"]


def test_bad_stream_parameters_are_422() -> None:
    with coordinator() as (base, _):
        for path, headers in [
            ("/ws?types=Bad-Type", {}),
            ("/ws?last_event_id=abc", {}),
            ("/ws", {"Last-Event-ID": "-4"}),
        ]:
            response = httpx.get(f"{base}{path}", headers=headers)
            assert response.status_code == 422, (path, response.text)
            assert "detail" in response.json()


def test_eventsource_style_client_sees_every_type_via_onmessage() -> None:
    """The seed's client: ``onmessage`` + ``JSON.parse(event.data)``; reconnects with its id."""
    received: list[tuple[str, object]] = []

    def onmessage(data: str) -> None:
        import json

        parsed = json.loads(data)
        received.append((parsed["type"], parsed["data"]))

    with coordinator() as (base, _):
        last_id: str | None = None
        with sse(base) as stream:
            message = stream.next_message()
            assert message.event is None  # would go to addEventListener, not onmessage
            assert message.retry is not None
            onmessage(message.data)
            register(base, "n1")
            message = stream.next_message()
            onmessage(message.data)
            last_id = stream.last_id
        register(base, "n2")
        with sse(base, headers={"Last-Event-ID": str(last_id)}) as stream:
            onmessage(stream.next_message().data)
        assert [t for t, _ in received] == ["initial_state", "node_registered", "node_registered"]


def test_slow_consumer_is_dropped_without_slowing_others(caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(
        websocket={"queue_size": 4, "ping_period": "30s"}, registry={"node_timeout": "1h"}
    )
    big = {f"k{i}": "x" * 2000 for i in range(250)}  # ~500 kB per event
    with coordinator(settings) as (base, app):
        caplog.set_level(logging.WARNING, logger="lightd_coordinator.events")
        slow = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /ws HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
        hub = app.state.coordinator.hub
        wait_until(lambda: hub.connected >= 1, 5, what="the slow client connected")
        try:
            with sse(base) as fast:
                fast.next_message()
                registered = 0
                deadline = time.monotonic() + 30
                while hub.dropped == 0 and time.monotonic() < deadline:
                    register(base, f"big{registered}", labels=big)
                    registered += 1
                    message = fast.next_message(timeout=10)  # the fast one keeps up
                    assert message.json()["data"]["id"] == f"big{registered - 1}"
                assert hub.dropped == 1
                assert hub.connected == 1  # only the fast client is left
                # the fast client still gets new events
                register(base, "after")
                assert fast.until("node_registered").json()["data"]["id"] == "after"
                metrics = httpx.get(f"{base}/metrics").json()
                assert metrics["websocket"]["connected_clients"] == 1
            assert any("slow consumer" in r.getMessage() for r in caplog.records)
        finally:
            slow.close()


def test_stream_can_be_turned_off_and_cors_follows_origins() -> None:
    settings = make_settings(websocket={"enabled": False, "origins": ["http://ui.example"]})
    with coordinator(settings) as (base, _):
        assert httpx.get(f"{base}/ws").status_code == 404
        allowed = httpx.get(f"{base}/health", headers={"Origin": "http://ui.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://ui.example"
        other = httpx.get(f"{base}/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
