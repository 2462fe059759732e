"""Every request example in seed 003 (``http`` blocks and ``curl`` commands), sent as written.

The requests are read out of docs/seeds/003-coordination.md itself; only the seed's
``http://localhost:3001`` is pointed at the test server's port. Answers are checked against the
seed's response examples (same keys, same value shapes).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.coordinator.harness import agent, coordinator, sse

SEED = Path(__file__).resolve().parents[2] / "docs" / "seeds" / "003-coordination.md"
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


@dataclass
class Example:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    stream: bool = False


def _http_examples(text: str) -> list[Example]:
    found = []
    for lang, block in _FENCE.findall(text):
        if lang != "http":
            continue
        head, _, body = block.partition("\n\n")
        lines = head.strip().splitlines()
        method, path = lines[0].split()[:2]
        headers = dict(line.split(": ", 1) for line in lines[1:])
        found.append(Example(method, path, headers, body.strip() or None))
    return found


def _curl_examples(text: str) -> list[Example]:
    found = []
    for lang, block in _FENCE.findall(text):
        if lang != "bash" or "curl" not in block:
            continue
        command = block.replace("\\\n", " ")
        args = shlex.split(command)
        assert args[0] == "curl"
        example = Example("GET", "")
        i = 1
        while i < len(args):
            arg = args[i]
            if arg == "-X":
                example.method, i = args[i + 1], i + 2
            elif arg == "-H":
                name, value = args[i + 1].split(": ", 1)
                example.headers[name] = value
                i += 2
            elif arg == "-d":
                example.body = args[i + 1]
                if example.method == "GET":
                    example.method = "POST"
                i += 2
            elif arg == "-N":
                example.stream, i = True, i + 1
            else:
                assert arg.startswith("http://localhost:3001"), arg
                example.path, i = arg.removeprefix("http://localhost:3001"), i + 1
        found.append(example)
    return found


def _seed_json(heading: str, text: str) -> Any:
    """The first ```json block after a heading of the seed."""
    after = text.split(heading, 1)[1]
    for lang, block in _FENCE.findall(after):
        if lang == "json":
            return json.loads(block.replace("[...]", "[]").replace("{...}", "{}"))
    raise AssertionError(f"no json example after {heading}")


def _same_shape(answer: Any, example: Any) -> None:
    if isinstance(example, dict):
        assert isinstance(answer, dict)
        assert set(example) <= set(answer), (sorted(example), sorted(answer))
        for key, value in example.items():
            if key in ("by_status", "by_provider", "services") and isinstance(value, dict):
                continue  # keyed by data
            _same_shape(answer[key], value)
    elif isinstance(example, list):
        assert isinstance(answer, list)
    elif isinstance(example, bool):
        assert isinstance(answer, bool)
    elif isinstance(example, int):
        assert isinstance(answer, int)
    elif isinstance(example, str):
        assert isinstance(answer, str)


def _send(client: httpx.Client, example: Example) -> httpx.Response:
    # {id} is the node id, except in the result report, where it is the command id of the body
    ident = "cmd_123456_node-1" if example.path.startswith("/api/v1/commands/") else "node-1"
    path = example.path.replace("{id}", ident)
    content = example.body.encode() if example.body is not None else None
    return client.request(example.method, path, headers=example.headers, content=content)


def test_the_seeds_http_examples_work_as_written() -> None:
    text = SEED.read_text(encoding="utf-8")
    examples = _http_examples(text)
    assert [f"{e.method} {e.path}" for e in examples] == [
        "POST /api/v1/nodes",
        "GET /api/v1/nodes",
        "GET /api/v1/nodes/{id}",
        "GET /api/v1/nodes/{id}/status",
        "PUT /api/v1/nodes/{id}",
        "DELETE /api/v1/nodes/{id}",
        "POST /api/v1/nodes/{id}/commands",
        "POST /api/v1/commands/{id}/result",
        "GET /api/v1/services",
        "GET /health",
        "GET /metrics",
    ]
    by_name = {f"{e.method} {e.path}": e for e in examples}
    with coordinator() as (base, _), httpx.Client(base_url=base, timeout=30) as client:
        registered = _send(client, by_name["POST /api/v1/nodes"])
        assert registered.status_code == 201
        assert registered.json()["labels"] == {"env": "dev", "region": "us-west"}

        listing = _send(client, by_name["GET /api/v1/nodes"])
        _same_shape(listing.json(), _seed_json("#### List Nodes", text))
        assert listing.json()["count"] == 1

        assert _send(client, by_name["GET /api/v1/nodes/{id}"]).json()["id"] == "node-1"
        status = _send(client, by_name["GET /api/v1/nodes/{id}/status"])
        _same_shape(status.json(), _seed_json("#### Get Node Status", text))

        updated = _send(client, by_name["PUT /api/v1/nodes/{id}"])
        assert updated.status_code == 200
        assert (updated.json()["status"], updated.json()["port"]) == ("inactive", 8081)

        # node-1 is at localhost:8081 where no agent runs: a failed result in the seed's shape
        sent = _send(client, by_name["POST /api/v1/nodes/{id}/commands"])
        assert sent.status_code == 200
        result = sent.json()
        _same_shape(result, _seed_json("#### Send Command", text))
        assert result["status"] == "failed" and "node-1" in result["output"]
        assert result["command"]["user"] == "developer"

        # the seed's report names a command that was never sent: 404 with the reason
        report = _send(client, by_name["POST /api/v1/commands/{id}/result"])
        assert report.status_code == 404
        assert "cmd_123456_node-1" in report.json()["detail"]

        services = _send(client, by_name["GET /api/v1/services"])
        _same_shape(services.json(), _seed_json("#### List Services", text))
        health = _send(client, by_name["GET /health"])
        _same_shape(health.json(), _seed_json("#### Health Check", text))
        metrics = _send(client, by_name["GET /metrics"])
        _same_shape(metrics.json(), _seed_json("#### Metrics", text))

        deleted = _send(client, by_name["DELETE /api/v1/nodes/{id}"])
        assert deleted.status_code == 200
        assert client.get("/api/v1/nodes/node-1").status_code == 404


def test_the_seeds_curl_examples_work_as_written() -> None:
    text = SEED.read_text(encoding="utf-8")
    register, command, monitor = _curl_examples(text)
    assert (register.method, register.path) == ("POST", "/api/v1/nodes")
    assert (command.method, command.path) == ("POST", "/api/v1/nodes/docker-node-1/commands")
    assert (monitor.path, monitor.stream) == ("/ws", True)
    # the seed's node listens at localhost:2376: an agent-like server plays it on a free port
    assert register.body is not None and '"port": 2376' in register.body
    with (
        agent() as (fake, port),
        coordinator() as (base, _),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        register.body = register.body.replace('"port": 2376', f'"port": {port}')
        with sse(base, monitor.path) as stream:
            first = stream.next_message().json()
            assert first["type"] == "initial_state"

            created = _send(client, register)
            assert created.status_code == 201
            assert created.json()["capabilities"] == {"docker": True, "compose": True}
            event = stream.next_message().json()
            assert (event["type"], event["data"]["id"]) == ("node_registered", "docker-node-1")

            answer = _send(client, command)
            assert answer.status_code == 200
            result = answer.json()
            _same_shape(result, _seed_json("#### Send Command", text))
            assert result["node_id"] == "docker-node-1"
            # registered without a dispatch_key: delivered unsigned, run, answered
            assert result["status"] == "success", result["output"]
            assert fake.received[0]["action"] == "docker ps"
            assert "authorization" not in fake.headers[0]
            assert stream.until("command_result").json()["data"]["id"] == result["id"]
