"""Scheduled tasks through the coordinator: container commands, REST sugar, CLI verbs, ``/ws``.

A coordinator in this process and a real ``lightd run`` agent (its own process, the wall
clock) on the real engine. Runs here start with ``run-now``; runs on time are proven with an
injected clock in ``tests/agent/test_schedules.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lightd_coordinator.cli import main
from tests.agent.conftest import SERVE
from tests.harness.docker import Cleanup
from tests.integration.fleet import (
    STATIC,
    operator,
    running_coordinator,
    start_agent,
    tail_events,
    wait_until,
)

pytestmark = pytest.mark.docker


def cli(base: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--url", base, "--token", STATIC])
    return code, out.getvalue(), err.getvalue()


def test_schedules_through_the_coordinator(
    tmp_path: Path, test_image: str, docker_cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with running_coordinator() as base, operator(base) as api, tail_events(base) as events:
        agent = start_agent(tmp_path, base, "sched", allow_exec=False)
        node = agent.node_id
        server = f"sched-{docker_cleanup.value}"
        try:
            wait_until(lambda: api.get(f"/api/v1/nodes/{node}").status_code == 200, what="node")
            spec = {
                "id": server,
                "image": test_image,
                "startup_command": SERVE,
                "labels": docker_cleanup.labels,
            }
            made = api.post(f"/api/v1/nodes/{node}/containers", json=spec)
            assert made.status_code == 200 and made.json()["status"] == "success", made.text

            def state() -> Any:
                answer = api.get(f"/api/v1/nodes/{node}/containers/{server}").json()
                return (answer.get("data") or {}).get("state")

            wait_until(lambda: state() == "running", what="the server running")
            sugar = f"/api/v1/nodes/{node}/containers/{server}/schedules"

            # the CLI: create with flags, list as a table
            code, out, err = cli(
                base,
                "containers",
                "schedules",
                "create",
                node,
                server,
                "--id",
                "nightly",
                "--name",
                "nightly restart",
                "--cron",
                "0 4 * * *",
                "--task",
                "power:restart",
                "--task",
                "command:say bye",
            )
            assert code == 0, err
            assert "id                 nightly" in out
            assert "next run" in out and "T04:00:00Z" in out
            code, out, err = cli(base, "containers", "schedules", "list", node, server)
            assert code == 0, err
            header, row = out.splitlines()
            assert header.split()[:4] == ["ID", "NAME", "CRON", "ENABLED"]
            assert row.startswith("nightly") and "power:restart, command:say bye" in row

            # bad input: the coordinator refuses the shape (422), the agent the cron (failed)
            wrong = {"name": "x", "cron": "* * * * *", "tasks": [{"action": "x"}]}
            bad = api.post(sugar, json=wrong)
            assert bad.status_code == 422, bad.text
            assert bad.json()["detail"][0]["loc"] == ["body", "tasks", 0, "action"]
            code, _, err = cli(
                base, "containers", "schedules", "create", node, server,
                "--name", "bad", "--cron", "61 * * * *", "--task", "backup",
            )  # fmt: skip
            assert code == 1 and "cron" in err and "out of range" in err, err

            # run now through the REST sugar: the chain runs on the agent, the restart and then
            # the console line (written to the restarted server's stdin)
            started = api.post(f"{sugar}/nightly/run-now")
            assert started.status_code == 200, started.text
            assert started.json()["status"] == "success", started.json()
            assert started.json()["data"]["running"] is True

            def last() -> Any:
                answer = api.get(sugar).json()
                views = answer["data"]["schedules"]
                result = views[0]["last_result"]
                return result if result and result["finished"] else None

            result = wait_until(last, what="the run to end")
            assert result["trigger"] == "run_now"
            assert [t["outcome"] for t in result["tasks"]] == ["success", "success"], result
            assert [t["action"] for t in result["tasks"]] == ["power", "command"]
            assert state() == "running"

            # every run and task outcome reached /ws, naming the node and the server
            def relayed() -> list[str]:
                return [
                    e["type"]
                    for e in events.events
                    if e["type"].startswith("schedule_") and e["data"]["server"] == server
                ]

            wait_until(lambda: "schedule_finished" in relayed(), what="schedule events on /ws")
            assert relayed() == [
                "schedule_started",
                "schedule_task",
                "schedule_task",
                "schedule_finished",
            ]
            finished = next(e for e in events.of("schedule_finished"))["data"]
            assert finished["node"] == node and finished["event"]["schedule"] == "nightly"
            assert finished["event"]["outcome"] == "success"

            # update (disable), then delete, through the CLI
            code, out, err = cli(
                base, "containers", "schedules", "update", node, server, "nightly", "--no-enabled"
            )
            assert code == 0, err
            assert "enabled            no" in out and "next run           -" in out
            code, out, err = cli(base, "containers", "schedules", "delete", node, server, "nightly")
            assert code == 0 and "deleted" in out, err
            code, out, err = cli(base, "containers", "schedules", "list", node, server, "--json")
            assert code == 0 and json.loads(out)["data"] == {"schedules": [], "count": 0}
        finally:
            agent.stop()
