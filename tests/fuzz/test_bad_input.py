"""Bad input on every route of both programs: never a 5xx, never a hang, reads keep working.

Every operation of both OpenAPI documents, against the real stack of :mod:`tests.fuzz.stack`,
gets bodies that are too large (declared and chunked), nested too deep, not UTF-8, hold lone
surrogates, duplicate keys, numbers no float holds, huge label sets or out-of-range ports, or
come with the wrong content type; path ids that are huge, not UTF-8 or look like paths; query
values and ``Last-Event-ID`` headers at and past every limit. Each answer must be a 4xx (or a
2xx where the input happens to be fine) within the client's timeout; after each group, every
read of both programs still answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from tests.fuzz.stack import BODY_LIMIT, Stack, running_stack

pytestmark = pytest.mark.docker

TIMEOUT = httpx.Timeout(20.0)


def _deep(depth: int) -> bytes:
    return b'{"data": ' + b"[" * depth + b"]" * depth + b"}"


BODIES: dict[str, tuple[bytes, str]] = {
    "too large": (b'{"a": "' + b"x" * (BODY_LIMIT + 10) + b'"}', "application/json"),
    "nested 40 deep": (_deep(40), "application/json"),
    "nested 100000 deep": (_deep(100_000), "application/json"),
    "not UTF-8": (b'{"id": "\xff\xfe", "name": "\xc3\x28"}', "application/json"),
    "UTF-8 of a surrogate": (b'{"id": "n", "name": "\xed\xa0\x80"}', "application/json"),
    "lone surrogates": (
        b'{"id": "\\ud800", "name": "\\udfff", "server": "\\ud800", "action": "\\ud800",'
        b' "type": "exec", "labels": {"\\ud800": "x"}, "env": {"A": "\\udc00"},'
        b' "data": {"k": "\\ud800"}, "command": "\\ud800", "image": "\\ud800"}',
        "application/json",
    ),
    "duplicate keys": (b'{"id": "a", "id": "b", "port": 1, "port": 70000}', "application/json"),
    "huge numbers": (
        b'{"port": 1e999, "tail": -1e999, "timeout": 1' + b"0" * 5000 + b"}",
        "application/json",
    ),
    "ports out of range": (
        json.dumps(
            {
                "id": "p",
                "address": "127.0.0.1",
                "port": 70000,
                "ports": [{"container": 0, "host": 65536}, {"container": -1}],
                "image": "x",
            }
        ).encode(),
        "application/json",
    ),
    "huge label set": (
        json.dumps(
            {
                "id": "labels",
                "address": "127.0.0.1",
                "port": 9,
                "image": "x",
                "labels": {f"k{i}": "v" * 100 for i in range(20_000)},
                "selector": {f"k{i}": "v" for i in range(20_000)},
            }
        ).encode()[: BODY_LIMIT - 1],
        "application/json",
    ),
    "many labels under the size limit": (
        json.dumps(
            {
                "id": "labels",
                "address": "127.0.0.1",
                "port": 9,
                "image": "x",
                "labels": {f"k{i}": "" for i in range(5000)},
            }
        ).encode(),
        "application/json",
    ),
    "wrong content type": (b"id=n&port=9", "application/x-www-form-urlencoded"),
    "text/plain JSON": (b'{"id": "n"}', "text/plain"),
    "no content type": (b'{"id": "n"}', ""),
    "empty": (b"", "application/json"),
    "null": (b"null", "application/json"),
    "array": (b"[1, 2, 3]", "application/json"),
    "broken JSON": (b'{"id": ', "application/json"),
}

BAD_IDS = [
    "9" * 5000,
    str(2**64),
    str(2**63),
    "-1",
    "%ff%fe",
    "%ed%a0%80",
    "..",
    "%2e%2e%2f%2e%2e",
    "a" * 300,
    "%00",
    "é" * 50,
]

EXTREME_QUERY = ["-1", "0", str(2**63), str(2**64), "9" * 5000, "1e999", "", "%ff", "null"]

LAST_EVENT_IDS = [
    "9" * 19,
    "9" * 20,
    str(2**63),
    str(2**64),
    "9" * 5000,
    "-1",
    "0",
    "+7",
    "²",
    "1.5",
    "abc",
]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, test_image: str
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("bad"), docker_client, test_image) as running:
        yield running


def _targets(stack: Stack) -> list[tuple[str, dict[str, str], str, str, dict[str, Any]]]:
    """(base URL, auth headers, method, path template, operation) of both programs."""
    with httpx.Client(timeout=TIMEOUT) as client:
        coordinator = client.get(f"{stack.coordinator}/openapi.json", headers=stack.operator)
        agent = client.get(f"{stack.agent}/openapi.json", headers=stack.agent_auth)
    assert coordinator.status_code == 200 and agent.status_code == 200
    found = [
        (stack.coordinator, stack.operator, method, path, operation)
        for method, path, operation in _operations(coordinator.json())
    ] + [
        (stack.agent, stack.agent_auth, method, path, operation)
        for method, path, operation in _operations(agent.json())
    ]
    assert len(found) > 50
    return found


def _real_path(stack: Stack, template: str) -> str:
    ids = {
        "node_id": stack.node,
        "server": stack.server,
        "server_id": stack.server,
        "command_id": stack.command,
        "dead_letter_id": "1",
    }
    return re.sub(r"\{([^}]+)\}", lambda m: ids.get(m.group(1), "x"), template)


def _send(client: httpx.Client, method: str, url: str, problems: list[str], **kwargs: Any) -> None:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        problems.append(f"{method} {url[:120]}: no answer ({exc!r})")
        return
    if response.status_code >= 500:
        problems.append(f"{method} {url[:120]}: {response.status_code} {response.text[:200]}")
    else:
        response.content.decode("utf-8")  # every answer is valid UTF-8


def test_bad_bodies_on_every_route(stack: Stack) -> None:
    problems: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for base, auth, method, template, operation in _targets(stack):
            if "requestBody" not in operation:
                continue
            url = base + _real_path(stack, template)
            for _name, (body, content_type) in BODIES.items():
                headers = {**auth, "Content-Type": content_type} if content_type else auth
                _send(client, method, url, problems, content=body, headers=headers)
            chunked = (
                BODIES["too large"][0][i : i + 65536] for i in range(0, BODY_LIMIT * 2, 65536)
            )
            _send(
                client,
                method,
                url,
                problems,
                content=chunked,
                headers={**auth, "Content-Type": "application/json"},
            )
    assert problems == []
    stack.reads_work()


def test_bad_path_ids_on_every_route(stack: Stack) -> None:
    problems: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for base, auth, method, template, operation in _targets(stack):
            if "{" not in template:
                continue
            for bad in BAD_IDS:
                path = re.sub(r"\{[^}]+\}", bad, template)
                body = {"content": b"{}", "headers": {**auth, "Content-Type": "application/json"}}
                kwargs = body if "requestBody" in operation else {"headers": auth}
                _send(client, method, base + path, problems, **kwargs)
    assert problems == []
    stack.reads_work()


def test_extreme_query_values_and_event_ids(stack: Stack) -> None:
    problems: list[str] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for base, auth, method, template, operation in _targets(stack):
            if method != "GET":
                continue
            url = base + _real_path(stack, template)
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            streaming = template.endswith("/events") or template == "/ws" or "logs" in template
            for name in names:
                if name in ("follow",) or streaming:
                    continue
                for value in EXTREME_QUERY:
                    _send(client, method, f"{url}?{name}={value}", problems, headers=auth)
            if any(p["name"] == "Last-Event-ID" for p in operation.get("parameters", [])):
                for value in LAST_EVENT_IDS:
                    headers = {**auth, "Last-Event-ID": value.encode()}
                    try:
                        with client.stream("GET", url, headers=headers) as response:
                            if response.status_code >= 500:
                                problems.append(f"{url} Last-Event-ID {value[:30]}: 5xx")
                    except httpx.TimeoutException:
                        problems.append(f"{url} Last-Event-ID {value[:30]}: no answer")
    assert problems == []
    stack.reads_work()


def _valid_bodies(stack: Stack) -> list[tuple[str, dict[str, str], str, str, Any]]:
    """A body each route accepts, to poison one field at a time."""
    c, a = stack.coordinator, stack.agent
    node, server = stack.node, stack.server
    spec = {
        "id": "poison",
        "image": "lightd-test-busybox",
        "startup_command": "sleep 1",
        "install_script": "true",
        "env": {"A": "b"},
        "labels": {"k": "v"},
    }
    update = {"event": "update", "server": server, "status": "ready"}
    return [
        (
            c,
            stack.operator,
            "POST",
            "/api/v1/nodes",
            {
                "id": "poison-node",
                "name": "n",
                "address": "127.0.0.1",
                "port": 9,
                "provider": "docker",
                "version": "1",
                "labels": {"k": "v"},
                "capabilities": {"c": True},
                "health_url": "http://127.0.0.1:9/health",
            },
        ),
        (c, stack.operator, "PUT", f"/api/v1/nodes/{node}", {"name": "n", "labels": {"k": "v"}}),
        (
            c,
            stack.operator,
            "POST",
            f"/api/v1/nodes/{node}/heartbeat",
            {
                "status": "active",
                "services": [{"id": "s", "name": "n", "type": "tcp", "endpoint": "127.0.0.1:1"}],
            },
        ),
        (
            c,
            stack.operator,
            "POST",
            f"/api/v1/nodes/{node}/events",
            {
                "type": "server_update",
                "data": {"server": server, "state": "x", "deep": [[["v"]]]},
            },
        ),
        (c, stack.operator, "POST", f"/api/v1/remote/{node}/update", update),
        (
            c,
            stack.operator,
            "POST",
            f"/api/v1/remote/{node}/update",
            {
                "event": "update",
                "server": server,
                "error": "failed",
                "data": "details",
            },
        ),
        (
            c,
            stack.operator,
            "POST",
            f"/api/v1/remote/{node}/config",
            {
                "containers": [{"id": "x"}],
                "settings": {"k": "v"},
            },
        ),
        (
            c,
            stack.operator,
            "POST",
            "/api/v1/commands",
            {
                "selector": {"role": "none"},
                "command": {"type": "exec", "action": "true"},
            },
        ),
        (
            c,
            stack.operator,
            "POST",
            f"/api/v1/nodes/{node}/containers/{server}/exec",
            {
                "command": "true",
            },
        ),
        (a, stack.agent_auth, "POST", "/containers", spec),
        (a, stack.agent_auth, "POST", f"/containers/{server}/exec", {"command": ["true"]}),
    ]


def _poisoned(value: Any, poison: Any) -> Iterator[Any]:
    """``value`` with one string (or key) at a time replaced by ``poison``."""
    if isinstance(value, str):
        yield poison
    elif isinstance(value, dict):
        for key, inner in value.items():
            for variant in _poisoned(inner, poison):
                yield {**value, key: variant}
            if isinstance(poison, str):
                yield {**{k: v for k, v in value.items() if k != key}, poison + key: inner}
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            for variant in _poisoned(inner, poison):
                yield [*value[:i], variant, *value[i + 1 :]]


def test_one_poisoned_field_in_an_otherwise_valid_body(stack: Stack) -> None:
    """A lone surrogate, or a value nested 40 deep, in any one field: 422, and reads work."""
    deep: Any = "v"
    for _ in range(40):
        deep = [deep]
    problems: list[str] = []
    sent = 0
    with httpx.Client(timeout=TIMEOUT) as client:
        for base, auth, method, path, body in _valid_bodies(stack):
            for poison in ("x\ud800y", deep):
                for variant in _poisoned(body, poison):
                    raw = json.dumps(variant).encode()  # ensure_ascii: "\ud800" as an escape
                    headers = {**auth, "Content-Type": "application/json"}
                    try:
                        response = client.request(method, base + path, content=raw, headers=headers)
                    except httpx.TransportError as exc:
                        problems.append(f"{method} {path}: no answer ({exc!r})")
                        continue
                    sent += 1
                    response.content.decode("utf-8")
                    if response.status_code != 422:
                        problems.append(f"{method} {path} {raw[:120]!r}: {response.status_code}")
    assert sent > 100
    assert problems == []
    stack.reads_work()
