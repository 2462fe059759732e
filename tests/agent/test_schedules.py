"""Scheduled tasks on a real agent (uvicorn on loopback) and the real engine.

The agent is built with a ``ManualClock`` (``create_app(config, clock=...)``), so a cron time
or a task's delay comes when the test moves the clock, never after real minutes. The test
waits until the scheduler sleeps on the expected time (``clock.sleepers()``) before moving it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.config import load_config
from lightd_agent.schedules import ManualClock
from tests.agent.conftest import SERVE, TOKEN, Agent, AgentFactory, remove_node, write_config
from tests.harness.docker import Cleanup
from tests.harness.servers import serve
from tests.harness.wait import wait_until

pytestmark = pytest.mark.docker

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(minute: int, second: int = 0) -> datetime:
    return START.replace(minute=minute, second=second)


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def chain(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "restart, then stop",
        "cron": "*/5 * * * *",
        "tasks": [
            {"action": "power", "payload": "restart"},
            {"action": "power", "payload": "stop", "delay": "30s"},
        ],
    }
    body.update(fields)
    return body


def schedule(client: httpx.Client, server: str, schedule_id: str) -> dict[str, Any]:
    response = client.get(f"/containers/{server}/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def last_outcome(client: httpx.Client, server: str, schedule_id: str, *outcomes: str) -> Any:
    def ended() -> dict[str, Any] | None:
        view = schedule(client, server, schedule_id)
        result = view["last_result"]
        return view if result and result["outcome"] in outcomes else None

    return wait_until(ended, 60, what=f"schedule {schedule_id} ending {outcomes}")


def sse_events(client: httpx.Client, until_kind: str, server: str) -> list[dict[str, Any]]:
    """The agent's kept events (``Last-Event-ID: 0`` replays them) up to ``until_kind``."""
    seen: list[dict[str, Any]] = []
    with client.stream("GET", "/events", headers={"Last-Event-ID": "0"}, timeout=30) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line.removeprefix("data:").strip())
            if event["server"] != server:
                continue
            seen.append(event)
            if event["kind"] == until_kind:
                break
    return seen


def test_a_two_task_chain_runs_on_time_and_shows_on_events(
    make_agent: AgentFactory, test_image: str
) -> None:
    clock = ManualClock(START)
    agent = make_agent(clock=clock)
    agent.install("web", test_image, startup_command=SERVE)
    before = agent.status("web")["started_at"]

    created = agent.client.post("/containers/web/schedules", json=chain(id="nightly"))
    assert created.status_code == 201, created.text
    assert created.json()["next_run"] == stamp(at(5))
    assert created.json()["last_result"] is None

    wait_until(lambda: at(5) in clock.sleepers(), 10, what="the scheduler asleep until 12:05")
    clock.set(at(5))
    # the restart ran on the real engine; the stop waits for its delay after it
    wait_until(lambda: at(5, 30) in clock.sleepers(), 60, what="the stop's 30 s delay")
    running = schedule(agent.client, "web", "nightly")
    assert running["running"] is True
    assert [t["outcome"] for t in running["last_result"]["tasks"]] == ["success"]
    status = agent.status("web")
    assert status["state"] == "running" and status["started_at"] != before

    clock.set(at(5, 30))
    done = last_outcome(agent.client, "web", "nightly", "success", "failed")
    result = done["last_result"]
    assert result["outcome"] == "success", result
    assert result["trigger"] == "cron"
    assert result["started"] == stamp(at(5)) and result["finished"] == stamp(at(5, 30))
    assert [(t["action"], t["outcome"]) for t in result["tasks"]] == [
        ("power", "success"),
        ("power", "success"),
    ]
    assert done["next_run"] == stamp(at(10)) and done["running"] is False
    assert agent.status("web")["state"] == "stopped"

    events = sse_events(agent.client, "schedule_finished", "web")
    kinds = [e["kind"] for e in events if e["kind"].startswith("schedule_")]
    assert kinds == ["schedule_started", "schedule_task", "schedule_task", "schedule_finished"]
    last = json.loads(events[-1]["data"])
    assert last["schedule"] == "nightly" and last["outcome"] == "success"
    task = json.loads(events[-2]["data"])["task"]
    assert task["index"] == 1 and task["action"] == "power" and task["outcome"] == "success"


def test_only_when_running_skips_a_stopped_server(
    make_agent: AgentFactory, test_image: str
) -> None:
    clock = ManualClock(START)
    agent = make_agent(clock=clock)
    agent.install("quiet", test_image, startup_command=SERVE)
    assert agent.client.post("/containers/quiet/stop").status_code == 200
    body = chain(id="guarded", only_when_running=True)
    assert agent.client.post("/containers/quiet/schedules", json=body).status_code == 201
    wait_until(lambda: at(5) in clock.sleepers(), 10, what="the scheduler asleep")
    clock.set(at(5))
    view = last_outcome(agent.client, "quiet", "guarded", "skipped")
    assert "stopped, not running (only_when_running)" in view["last_result"]["error"]
    assert view["last_result"]["tasks"] == []
    assert agent.status("quiet")["state"] == "stopped"  # nothing was started
    kinds = [e["kind"] for e in sse_events(agent.client, "schedule_skipped", "quiet")]
    assert kinds[-1] == "schedule_skipped"


def test_run_now_and_never_twice_at_once(make_agent: AgentFactory, test_image: str) -> None:
    clock = ManualClock(START)
    agent = make_agent(clock=clock)
    agent.install("busy", test_image, startup_command=SERVE)
    # the first task waits a minute (on the manual clock): the run stays going meanwhile
    body = chain(
        id="slow",
        cron="0 0 1 1 *",
        tasks=[{"action": "power", "payload": "restart", "delay": "1m"}],
    )
    assert agent.client.post("/containers/busy/schedules", json=body).status_code == 201
    first = agent.client.post("/containers/busy/schedules/slow/run-now")
    assert first.status_code == 202, first.text
    assert first.json()["running"] is True
    second = agent.client.post("/containers/busy/schedules/slow/run-now")
    assert second.status_code == 409, second.text
    assert "running already" in second.json()["detail"]
    view = schedule(agent.client, "busy", "slow")
    assert view["last_skipped"]["trigger"] == "run_now"
    assert "still running" in view["last_skipped"]["reason"]

    wait_until(lambda: at(1) in clock.sleepers(), 10, what="the task's delay")
    clock.set(at(1))
    done = last_outcome(agent.client, "busy", "slow", "success", "failed")
    assert done["last_result"]["outcome"] == "success"
    assert done["last_result"]["trigger"] == "run_now"
    assert done["last_result"]["tasks"][0]["started"] == stamp(at(1))
    again = agent.client.post("/containers/busy/schedules/slow/run-now")
    assert again.status_code == 202, again.text  # once the run ended, run-now works again


def test_crud_and_bad_input(make_agent: AgentFactory, test_image: str) -> None:
    agent = make_agent(clock=ManualClock(START))
    agent.install("crud", test_image, startup_command=SERVE, start_on_completion=False)
    url = "/containers/crud/schedules"
    c = agent.client

    def refused(response: httpx.Response, *words: str) -> None:
        assert response.status_code == 422, response.text
        for word in words:
            assert word in response.json()["detail"], response.json()

    refused(c.post(url, json=chain(cron="61 * * * *")), "cron:", "out of range")
    refused(c.post(url, json=chain(cron="* * *")), "cron", "exactly 5 fields")
    refused(c.post(url, json=chain(cron="0 0 31 2 *")), "cron", "never fires")
    refused(c.post(url, json=chain(timezone="Mars/Olympus")), "timezone", "unknown timezone")
    refused(c.post(url, json=chain(tasks=[{"action": "nuke"}])), "tasks.0.action")
    refused(
        c.post(url, json=chain(tasks=[{"action": "power", "payload": "explode"}])),
        "power task's payload",
    )
    refused(c.post(url, json=chain(tasks=[{"action": "backup"}] * 11)), "tasks", "at most 10")
    refused(c.post(url, json=chain(tasks=[])), "tasks")
    refused(
        c.post(url, json=chain(tasks=[{"action": "backup", "delay": "1h"}])),
        "between 0s and 15m",
    )
    refused(c.post(url, json={**chain(), "colour": "red"}), "colour")
    assert c.get(url).json() == {"schedules": [], "count": 0}  # nothing was half-applied
    assert c.post("/containers/nope/schedules", json=chain()).status_code == 404

    made = c.post(url, json=chain(name="first"))
    assert made.status_code == 201, made.text
    made_id = made.json()["id"]
    assert c.post(url, json=chain(id=made_id)).status_code == 409
    replaced = c.put(f"{url}/{made_id}", json=chain(name="second", cron="0 * * * *"))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "second"
    assert replaced.json()["next_run"] == stamp(START + timedelta(hours=1))
    other = c.put(f"{url}/{made_id}", json=chain(id="other"))
    assert other.status_code == 422 and "is not the path's" in other.json()["detail"]
    patched = c.patch(f"{url}/{made_id}", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["next_run"] is None
    assert patched.json()["name"] == "second"
    refused(c.patch(f"{url}/{made_id}", json={"cron": "99 * * * *"}), "cron")
    assert c.get(f"{url}/{made_id}").json()["cron"] == "0 * * * *"
    listed = c.get(url).json()
    assert listed["count"] == 1 and listed["schedules"][0]["id"] == made_id
    assert c.delete(f"{url}/{made_id}").status_code == 204
    assert c.get(f"{url}/{made_id}").status_code == 404
    assert c.post(f"{url}/{made_id}/run-now").status_code == 404

    assert c.post(url, json=chain(id="kept")).status_code == 201
    assert c.delete("/containers/crud").status_code == 200
    assert c.get(url).status_code == 404  # the server went, and its schedules with it
    unauthorised = httpx.get(f"{agent.url}{url}")
    assert unauthorised.status_code == 401


@contextmanager
def agent_at(base: Path, node: str, clock: ManualClock) -> Iterator[httpx.Client]:
    """An agent on ``base``'s storage, served until the block ends (a restart is two blocks)."""
    config = load_config(write_config(base, node))
    with (
        serve(create_app(config, clock=clock)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c,
    ):
        yield c


@pytest.mark.parametrize("policy", ["run_once", "skip"])
def test_a_missed_run_across_an_agent_restart(
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    policy: str,
) -> None:
    node = f"test-{uuid.uuid4().hex[:10]}"
    clock = ManualClock(START)
    spec = {"id": "srv", "image": test_image, "startup_command": SERVE}
    spec["labels"] = dict(docker_cleanup.labels)
    body = chain(id="m", missed=policy, tasks=[{"action": "power", "payload": "restart"}])
    try:
        with agent_at(tmp_path, node, clock) as client:
            assert client.post("/containers", json=spec).status_code == 202
            wait_until(
                lambda: client.get("/containers/srv/status").json()["state"] == "running",
                60,
                what="srv running",
            )
            assert client.post("/containers/srv/schedules", json=body).status_code == 201
        clock.advance(timedelta(minutes=12))  # 12:05 and 12:10 pass while the agent is down
        with agent_at(tmp_path, node, clock) as client:
            if policy == "run_once":
                view = last_outcome(client, "srv", "m", "success", "failed")
                assert view["last_result"]["outcome"] == "success", view
                assert view["last_result"]["trigger"] == "missed"
                assert view["last_result"]["started"] == stamp(at(12))
            else:
                view = schedule(client, "srv", "m")
                assert view["last_result"] is None
                assert view["last_skipped"]["trigger"] == "missed"
            assert view["next_run"] == stamp(at(15))
    finally:
        remove_node(docker_client, node)


def test_an_agent_without_a_clock_uses_the_wall_clock(agent: Agent, test_image: str) -> None:
    agent.install("wall", test_image, startup_command=SERVE, start_on_completion=False)
    made = agent.client.post("/containers/wall/schedules", json=chain(cron="* * * * *"))
    assert made.status_code == 201, made.text
    next_run = datetime.fromisoformat(made.json()["next_run"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now < next_run <= now + timedelta(minutes=1)
