"""Command dispatch to a real HTTP server standing in for the agent's ``POST /commands``."""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jose import jwt

from lightd_shared.commands import CommandResult
from lightd_shared.dispatch import AgentCommand, DispatchClaims, FanOutResults
from tests.coordinator.harness import (
    AgentBehaviour,
    agent,
    coordinator,
    make_settings,
    sse,
)
from tests.harness.registration import register
from tests.harness.servers import free_port
from tests.harness.wait import wait_until

DISPATCH_KEY = "node-dispatch-key-0123456789abcdef0123456789"
COMMAND = {"type": "exec", "action": "echo 'hello world'", "params": {"timeout": "5s"}}


_register = functools.partial(register, dispatch_key=DISPATCH_KEY)
"""Register a node with the dispatch key these tests sign with."""


def _send(
    base: str, node_id: str, body: dict[str, Any] | None = None, **kwargs: Any
) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/nodes/{node_id}/commands", json=body or COMMAND, timeout=30, **kwargs
    )


def test_command_reaches_the_agent_and_its_result_comes_back() -> None:
    with agent() as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        response = _send(base, "node-1", {**COMMAND, "user": "developer"})
        assert response.status_code == 200
        result = CommandResult.model_validate_json(response.content)
        assert result.status == "success"
        assert result.output == "hello world"
        assert result.node_id == "node-1"
        assert result.id.startswith("cmd_") and result.id.endswith("_node-1")
        assert result.command is not None and result.command.action == "echo 'hello world'"
        assert result.duration is not None and result.finished is not None
        # what the agent received: the command plus its ids, and credentials for this node only
        assert fake.count == 1
        sent = AgentCommand.model_validate(fake.received[0])
        assert sent.id == result.id and sent.node_id == "node-1" and sent.user == "developer"
        headers = fake.headers[0]
        assert headers["idempotency-key"] == result.id
        scheme, token = headers["authorization"].split(" ", 1)
        assert scheme == "Bearer"
        claims = DispatchClaims.model_validate(
            jwt.decode(token, DISPATCH_KEY, algorithms=["HS256"], audience="node-1")
        )
        assert claims.sub == "coordinator" and claims.jti == result.id
        assert claims.exp - claims.iat <= 120
        # stored: the same result can be fetched later
        again = httpx.get(f"{base}/api/v1/commands/{result.id}")
        assert again.status_code == 200 and again.json()["status"] == "success"


def test_ids_are_unique() -> None:
    with agent() as (_, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        ids = {_send(base, "node-1").json()["id"] for _ in range(5)}
        assert len(ids) == 5


def test_slow_node_times_out_at_params_timeout_without_a_retry() -> None:
    with agent(AgentBehaviour(delay=1)) as (fake, port), coordinator() as (base, _):
        _register(base, "slow", port)
        response = _send(base, "slow", {**COMMAND, "params": {"timeout": "300ms"}})
        assert response.status_code == 200
        result = response.json()
        assert result["status"] == "timeout"
        assert "300ms" in result["output"]
        assert fake.count == 1  # the request may have been accepted: never sent twice


def test_unreachable_node_is_failed_with_the_reason() -> None:
    port = free_port()  # nothing listens here
    settings = make_settings(registry={"max_retries": 2})
    with coordinator(settings) as (base, _):
        _register(base, "down", port)
        result = _send(base, "down").json()
        assert result["status"] == "failed"
        assert "unreachable" in result["output"]
        assert "3 attempt" in result["output"]
        assert f"127.0.0.1:{port}" in result["output"]


def test_connect_failures_are_retried_and_the_command_runs_once() -> None:
    port = free_port()
    settings = make_settings(registry={"max_retries": 8})
    fake_holder: dict[str, Any] = {}

    def start_late(ready: threading.Event, stop: threading.Event) -> None:
        # the first attempts find nothing listening: start once two of them failed
        wait_until(lambda: core["c"].dispatcher.deliveries >= 2, what="two failed attempts")
        with agent(port=port) as (fake, _):
            fake_holder["fake"] = fake
            ready.set()
            stop.wait(30)

    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=start_late, args=(ready, stop), daemon=True)
    core: dict[str, Any] = {}
    with coordinator(settings) as (base, app):
        core["c"] = app.state.coordinator
        _register(base, "late", port)
        thread.start()
        try:
            result = _send(base, "late", {**COMMAND, "params": {"timeout": "20s"}}).json()
            assert ready.is_set()
            assert result["status"] == "success", result
            assert fake_holder["fake"].count == 1
        finally:
            stop.set()
            thread.join(10)


@contextmanager
def _hangup_server() -> Iterator[tuple[int, list[bytes]]]:
    """Accepts a connection, reads the request, then closes without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                except TimeoutError:
                    pass
                seen.append(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_broken_connection_after_sending_is_not_retried() -> None:
    with _hangup_server() as (port, seen), coordinator() as (base, app):
        _register(base, "flaky", port)
        result = _send(base, "flaky").json()
        assert result["status"] == "failed"
        assert "never runs twice" in result["output"]
        # the command has ended (nothing left in flight to retry it) after one delivery
        dispatcher = app.state.coordinator.dispatcher
        assert dispatcher.in_flight == 0 and dispatcher.deliveries == 1
        assert len(seen) == 1


def test_node_refusal_is_failed_with_the_status() -> None:
    with agent(AgentBehaviour(status_code=503)) as (fake, port), coordinator() as (base, _):
        _register(base, "busy", port)
        result = _send(base, "busy").json()
        assert result["status"] == "failed"
        assert "HTTP 503" in result["output"]
        assert fake.count == 1


def test_output_is_capped() -> None:
    settings = make_settings(registry={"max_output": 1000})
    with agent(AgentBehaviour(output="y" * 5000)) as (_, port), coordinator(settings) as (base, _):
        _register(base, "chatty", port)
        result = _send(base, "chatty").json()
        assert result["output"].startswith("y" * 1000)
        assert "truncated" in result["output"]
        assert len(result["output"]) < 1200


def test_async_command_answers_202_then_the_result_is_stored() -> None:
    with agent(AgentBehaviour(delay=0.3)) as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        response = _send(base, "node-1", params={"async": "true"})
        assert response.status_code == 202
        pending = response.json()
        assert pending["status"] == "pending"

        def ended() -> dict[str, Any] | None:
            stored: dict[str, Any] = httpx.get(f"{base}/api/v1/commands/{pending['id']}").json()
            return stored if stored["status"] != "pending" else None

        stored = wait_until(ended, 10, what="the async command's result stored")
        assert stored["status"] == "success"
        assert stored["output"] == "hello world"
        assert fake.count == 1


def test_node_accepts_then_reports_the_result() -> None:
    with agent(AgentBehaviour(accept_only=True)) as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        outcome: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: outcome.setdefault("r", _send(base, "node-1")), daemon=True
        )
        thread.start()
        wait_until(lambda: fake.count > 0, 5, what="the node received the command")
        command_id = fake.received[0]["id"]
        # the coordinator has read the node's 202 and waits for the report
        wait_until(
            lambda: httpx.get(f"{base}/api/v1/commands/{command_id}").json()["status"] == "running",
            5,
            what="the command stored as running",
        )
        report = {
            "id": command_id,
            "node_id": "node-1",
            "status": "success",
            "output": "Command executed successfully",
            "duration": "150ms",
            "finished": "2026-01-13T18:17:00Z",
        }
        reported = httpx.post(f"{base}/api/v1/commands/{command_id}/result", json=report)
        assert reported.status_code == 200, reported.text
        thread.join(10)
        result = outcome["r"].json()
        assert result["status"] == "success"
        assert result["output"] == "Command executed successfully"
        assert result["duration"] == "150ms"
        # a second final report is refused; mismatched or unknown ids too
        again = httpx.post(f"{base}/api/v1/commands/{command_id}/result", json=report)
        assert again.status_code == 409
        mismatch = httpx.post(f"{base}/api/v1/commands/other/result", json=report)
        assert mismatch.status_code == 400
        unknown = httpx.post(
            f"{base}/api/v1/commands/cmd_1_x/result", json={**report, "id": "cmd_1_x"}
        )
        assert unknown.status_code == 404


def test_accepted_but_never_reported_times_out() -> None:
    with agent(AgentBehaviour(accept_only=True)) as (_, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        result = _send(base, "node-1", {**COMMAND, "params": {"timeout": "300ms"}}).json()
        assert result["status"] == "timeout"
        assert "reported no result" in result["output"]


def test_a_late_report_after_timeout_is_409_and_changes_nothing() -> None:
    with agent(AgentBehaviour(accept_only=True)) as (_, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        result = _send(base, "node-1", {**COMMAND, "params": {"timeout": "200ms"}}).json()
        assert result["status"] == "timeout"
        late = {"id": result["id"], "node_id": "node-1", "status": "success", "output": "late"}
        for status in ("success", "running"):
            answer = httpx.post(
                f"{base}/api/v1/commands/{result['id']}/result", json={**late, "status": status}
            )
            assert answer.status_code == 409, answer.text
            assert "timeout" in answer.json()["detail"]
        stored = httpx.get(f"{base}/api/v1/commands/{result['id']}").json()
        assert stored == result
        # one command_result only: replay the history up to a marker event published after
        update = {"event": "update", "server": "marker", "status": "ready"}
        marker = {"type": "server_update", "data": {"server": "marker", "update": update}}
        assert httpx.post(f"{base}/api/v1/nodes/node-1/events", json=marker).status_code == 202
        headers = {"Last-Event-ID": "0"}
        with sse(base, "/ws?types=command_result,server_update", headers=headers) as stream:
            seen = [stream.next_message().json() for _ in range(2)]
        assert [e["type"] for e in seen] == ["command_result", "server_update"]
        assert seen[0]["data"]["status"] == "timeout"


def test_idempotency_key_returns_the_first_result() -> None:
    with agent() as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        headers = {"Idempotency-Key": "deploy-42"}
        first = _send(base, "node-1", headers=headers).json()
        second = _send(base, "node-1", headers=headers).json()
        assert first == second
        assert fake.count == 1
        other = _send(base, "node-1", headers={"Idempotency-Key": "deploy-43"}).json()
        assert other["id"] != first["id"]
        assert fake.count == 2
        # the same key with another command is a mistake, not a request for the first result
        changed = {**COMMAND, "action": "echo something else"}
        reused = _send(base, "node-1", changed, headers=headers)
        assert reused.status_code == 422
        [error] = reused.json()["detail"]
        assert error["loc"] == ["header", "Idempotency-Key"]
        assert "deploy-42" in error["msg"] and first["id"] in error["msg"]
        assert fake.count == 2  # nothing was sent


def test_concurrent_requests_with_one_key_run_once() -> None:
    with agent(AgentBehaviour(delay=0.3)) as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        results: list[dict[str, Any]] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    _send(base, "node-1", headers={"Idempotency-Key": "same"}).json()
                )
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert len({r["id"] for r in results}) == 1
        assert all(r["status"] == "success" for r in results)
        assert fake.count == 1


def test_fan_out_by_label_selector() -> None:
    with (
        agent(AgentBehaviour(output="a")) as (fake_a, port_a),
        agent(AgentBehaviour(output="b")) as (fake_b, port_b),
        agent(AgentBehaviour(output="c")) as (fake_c, port_c),
        coordinator() as (base, _),
    ):
        _register(base, "a", port_a, labels={"env": "dev", "region": "us-west"})
        _register(base, "b", port_b, labels={"env": "dev"})
        _register(base, "c", port_c, labels={"env": "prod"})
        response = httpx.post(
            f"{base}/api/v1/commands",
            json={"selector": {"env": "dev"}, "command": COMMAND},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        outcome = FanOutResults.model_validate_json(response.content)
        assert outcome.count == 2
        assert sorted((r.node_id, r.output) for r in outcome.results) == [("a", "a"), ("b", "b")]
        assert (fake_a.count, fake_b.count, fake_c.count) == (1, 1, 0)
        # with an idempotency key the fan-out is not repeated
        key = {"Idempotency-Key": "fan-1"}
        once = httpx.post(
            f"{base}/api/v1/commands",
            json={"selector": {"region": "us-west"}, "command": COMMAND},
            headers=key,
            timeout=30,
        ).json()
        twice = httpx.post(
            f"{base}/api/v1/commands",
            json={"selector": {"region": "us-west"}, "command": COMMAND},
            headers=key,
            timeout=30,
        ).json()
        assert once == twice and once["count"] == 1
        assert fake_a.count == 2
        # async fan-out
        accepted = httpx.post(
            f"{base}/api/v1/commands?async=true",
            json={"selector": {}, "command": COMMAND},
            timeout=30,
        )
        assert accepted.status_code == 202
        assert [r["status"] for r in accepted.json()["results"]] == ["pending"] * 3


def test_command_result_event_is_published() -> None:
    with agent() as (_, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        with sse(base, "/ws?types=command_result") as stream:
            stream.next_message()
            result = _send(base, "node-1").json()
            event = stream.next_message().json()
            assert event["type"] == "command_result"
            assert event["data"]["id"] == result["id"]
            assert event["data"]["status"] == "success"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "exec"},
        {"type": "shell", "action": "ls"},
        {"type": "exec", "action": ""},
        {"type": "exec", "action": "ls", "params": {"timeout": "soon"}},
        {"type": "exec", "action": "ls", "extra": 1},
    ],
)
def test_bad_commands_are_422_and_never_sent(body: dict[str, Any]) -> None:
    with agent() as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        response = _send(base, "node-1", body)
        assert response.status_code == 422
        assert fake.count == 0


def test_command_to_unknown_node_is_404() -> None:
    with coordinator() as (base, _):
        response = _send(base, "ghost")
        assert response.status_code == 404
        assert "ghost" in response.json()["detail"]


def test_results_expire_after_result_ttl() -> None:
    settings = make_settings(registry={"result_ttl": "300ms"})
    with agent() as (_, port), coordinator(settings) as (base, _):
        _register(base, "node-1", port)
        result = _send(base, "node-1").json()
        wait_until(
            lambda: httpx.get(f"{base}/api/v1/commands/{result['id']}").status_code == 404,
            5,
            what="the result forgotten",
        )
        assert httpx.get(f"{base}/api/v1/commands/{result['id']}").status_code == 404


def test_commands_open_at_shutdown_end_failed(tmp_path: Path) -> None:
    settings = make_settings(registry={"provider": "sqlite", "path": str(tmp_path / "r.db")})
    with agent(AgentBehaviour(accept_only=True)) as (_, port):
        with coordinator(settings) as (base, _):
            _register(base, "node-1", port)
            pending = _send(base, "node-1", params={"async": "true"}).json()
            wait_until(  # the node accepted it: open (running) when the coordinator stops
                lambda: (
                    httpx.get(f"{base}/api/v1/commands/{pending['id']}").json()["status"]
                    == "running"
                ),
                5,
                what="the command stored as running",
            )
        with coordinator(settings) as (base, _):
            stored = httpx.get(f"{base}/api/v1/commands/{pending['id']}").json()
            assert stored["status"] == "failed"
            assert "stopped before the node answered" in stored["output"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "server"),
        ({"server": "web", "stop_timout": "5s"}, "stop_timout"),
        ({"server": "web", "stop_timeout": "soon"}, "stop_timeout"),
    ],
)
def test_a_wrong_container_param_is_a_422_naming_it(params: dict[str, Any], field: str) -> None:
    with agent() as (fake, port), coordinator() as (base, _):
        _register(base, "node-1", port)
        body = {"type": "container", "action": "stop", "params": params}
        for path, sent in (
            ("/api/v1/nodes/node-1/commands", body),
            ("/api/v1/commands", {"selector": {}, "command": body}),
        ):
            answer = httpx.post(f"{base}{path}", json=sent)
            assert answer.status_code == 422, answer.text
            (error,) = answer.json()["detail"]
            assert error["loc"][-2:] == ["params", field], error
        assert fake.count == 0  # nothing was dispatched
