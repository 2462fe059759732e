"""Event ids on the agent's ``/events``: they keep growing across restarts, and a malformed
``Last-Event-ID`` is a 422 that names the header, never a 500."""

from __future__ import annotations

import pytest

from lightd_agent.events import EventBus, LifecycleEvent
from lightd_shared.events import parse_event_id
from tests.agent.conftest import Agent


def test_ids_of_a_new_bus_follow_the_ids_of_the_last_one() -> None:
    before = EventBus()
    last = [before.publish(LifecycleEvent(server="s", kind="Started", state="installing"))]
    last += [before.publish(LifecycleEvent(server="s", kind="Ready", state="ready"))]
    assert last[1].id == last[0].id + 1
    after = EventBus()  # the agent restarted
    first = after.publish(LifecycleEvent(server="s", kind="Started", state="installing"))
    assert first.id > last[1].id
    # so a client resuming with the old id gets the new process's events replayed
    subscription = after.subscribe(after=last[1].id)
    assert subscription.queue.get_nowait() == first


@pytest.mark.parametrize("value", ["²", "1" * 5000, "-1", "1.5", " 7"])
def test_parse_event_id_refuses_what_int_would_choke_on(value: str) -> None:
    with pytest.raises(ValueError, match="event id"):
        parse_event_id(value)


def test_parse_event_id_takes_an_int64() -> None:
    assert parse_event_id("0") == 0
    assert parse_event_id("9" * 19) == int("9" * 19)


@pytest.mark.docker
def test_bad_last_event_id_is_a_422(agent: Agent) -> None:
    for value in ["²", "9" * 5000, "abc"]:
        answer = agent.client.get("/events", headers={"Last-Event-ID": value.encode()})
        assert answer.status_code == 422, value
        # the agent's one 422 shape: "detail" says it in words, "errors" lists the problems
        assert answer.json()["detail"].startswith("header.Last-Event-ID: must be")
        assert answer.json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]
