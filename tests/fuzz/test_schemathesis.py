"""schemathesis against both programs' OpenAPI documents, with auth on and real ids.

Both programs run for real (a coordinator, an agent enrolled with it, a busybox server on the
agent); every path id names a real node, server or command. schemathesis runs every phase
(examples, coverage, fuzzing, stateful) with **all** its checks, a fixed seed and a bounded
number of examples per operation, and must find nothing: no server error, every answer's status
code documented and its body matching its schema.

Two runs per program: the examples and fuzzing phases with the path ids fixed to the real
ones, then the stateful phase without them (it follows the links from what it created itself;
fixed ids would point it at a node or server an earlier step deleted). The coverage phase is left
out: on CI's two cores it alone takes about four minutes per program.

One setting is not schemathesis's default: ``positive_data_acceptance`` also takes 400 and
422. Some rules cannot be written as JSON Schema (a host name or IP, a duration such as
``2h30m``, a non-empty command, "nodes relay only server_update", a body's id that must repeat
the path's); a schema-valid body that breaks one gets the documented 400 or 422, which is the
right answer.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.fuzz.stack import API_TOKEN, STATIC, Stack, running_stack

pytestmark = pytest.mark.docker

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SEED = 20261201
MAX_EXAMPLES = 4
BUDGET = 200  # seconds per run; a run that takes longer fails


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, test_image: str
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("fuzz"), docker_client, test_image) as running:
        yield running


def _config(path: Path, parameters: dict[str, str]) -> Path:
    lines = [
        f"seed = {SEED}",
        "request-timeout = 30",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "[checks.positive_data_acceptance]",
        'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]',
        "[parameters]",
        *(f'"{key}" = "{value}"' for key, value in parameters.items()),
        # endless event streams (GET /events, /ws, logs?follow=true): read one event, or for
        # at most 3 s, not the whole request timeout
        "[[operations]]",
        'include-path-regex = "(/events|/ws|/logs)$"',
        "request-timeout = 3",
        "max-stream-events = 1",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(config: Path, schema_url: str, token: str, report: Path, phases: str) -> None:
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "--no-color",
        "run",
        schema_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--phases",
        phases,
        "--workers",
        "1",
        "--generation-database",
        "none",  # nothing carried over from an earlier run: the seed alone decides
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=BUDGET,
        check=False,
        cwd=report.parent,  # its cache directory goes there, not into the work tree
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    for phase in phases.split(","):
        assert phase.capitalize() in output, output[-5000:]


def test_coordinator_conforms_to_its_openapi(stack: Stack, tmp_path: Path) -> None:
    config = _config(
        tmp_path / "schemathesis.toml",
        {
            "path.node_id": stack.node,
            "path.server": stack.server,
            "path.command_id": stack.command,
            "body.address": "127.0.0.1",
        },
    )
    schema = f"{stack.coordinator}/openapi.json"
    _run(config, schema, STATIC, tmp_path / "report", "examples,fuzzing")
    stateful = _config(tmp_path / "stateful.toml", {"body.address": "127.0.0.1"})
    _run(stateful, schema, STATIC, tmp_path / "report", "stateful")
    stack.reads_work()


def test_agent_conforms_to_its_openapi(stack: Stack, tmp_path: Path) -> None:
    config = _config(tmp_path / "schemathesis.toml", {"path.server_id": stack.server})
    schema = f"{stack.agent}/openapi.json"
    _run(config, schema, API_TOKEN, tmp_path / "report", "examples,fuzzing")
    _run(
        _config(tmp_path / "stateful.toml", {}), schema, API_TOKEN, tmp_path / "report", "stateful"
    )
    stack.reads_work()
