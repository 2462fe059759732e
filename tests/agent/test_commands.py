"""The agent's command runner: exec on the host (only when allowed, bounded, capped), container
actions mapped onto the server manager, and each command id run once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lightd_agent.command_ledger import CommandLedger
from lightd_agent.commands import CommandRunner, exec_environment
from lightd_agent.config import AgentConfig, CommandsSection
from lightd_agent.docker_backend import DockerBackend
from lightd_agent.events import EventBus
from lightd_agent.lifecycle import ServerManager
from lightd_shared.dispatch import AgentCommand


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _runner(tmp_path: Any, **commands: Any) -> CommandRunner:
    config = AgentConfig.model_validate(
        {
            "authorization": {"enabled": False},
            "storage": {"base_path": str(tmp_path)},
            "node": {"id": "unit-node"},
        },
        strict=False,
    )
    bus = EventBus()
    manager = ServerManager(config, DockerBackend(config.docker, node_id="unit-node"), bus)
    settings = CommandsSection.model_validate(commands, strict=False)
    return CommandRunner(settings, manager, bus, "unit-node")


def _command(type_: str, action: str, **params: Any) -> AgentCommand:
    return AgentCommand.model_validate(
        {
            "id": f"cmd_{time.time_ns()}_unit-node",
            "node_id": "unit-node",
            "type": type_,
            "action": action,
            "params": params,
        },
        strict=False,
    )


@pytest.mark.anyio
async def test_exec_is_refused_unless_enabled(tmp_path: Any) -> None:
    result = await _runner(tmp_path).run(_command("exec", "echo 'hello world'"))
    assert result.status == "failed"
    assert "commands.allow_exec" in result.output and "hello" not in result.output


@pytest.mark.anyio
async def test_exec_runs_the_seed_example(tmp_path: Any) -> None:
    result = await _runner(tmp_path, allow_exec=True).run(_command("exec", "echo 'hello world'"))
    assert result.status == "success" and result.output == "hello world"
    assert result.id.endswith("_unit-node") and result.node_id == "unit-node"
    assert result.duration is not None and result.finished is not None


@pytest.mark.anyio
async def test_exec_failure_timeout_and_cap(tmp_path: Any) -> None:
    runner = _runner(tmp_path, allow_exec=True, max_output=256)
    failed = await runner.run(_command("exec", "echo oops >&2; exit 3"))
    assert failed.status == "failed" and "oops" in failed.output and "exit code 3" in failed.output
    began = time.monotonic()
    slow = await runner.run(_command("exec", "echo started; sleep 30 & wait", timeout="300ms"))
    assert slow.status == "timeout" and "started" in slow.output and "killed" in slow.output
    assert time.monotonic() - began < 20  # the process group was killed, not waited for
    chatty = await runner.run(_command("exec", "yes | head -c 100000"))
    assert chatty.status == "success" and "output truncated: 256 of" in chatty.output


@pytest.mark.anyio
async def test_container_actions_fail_with_the_reason(tmp_path: Any) -> None:
    runner = _runner(tmp_path)
    cases = {
        "frobnicate": ({"server": "s1"}, "unknown container action"),
        "start": ({}, "params.server"),
        "status": ({"server": "nope"}, "Docker engine"),  # not started: an AgentError
        "create": ({}, "params.spec"),
        "logs": ({"server": "s1", "tail": -1}, "params.tail"),
        # each action's params are typed: a misspelt or unknown param is named
        "stop": ({"sever": "s1"}, "params.sever: Extra inputs are not permitted"),
        "delete": ({"server": "s1", "volumes": "yes"}, "params.volumes"),
    }
    for action, (params, reason) in cases.items():
        result = await runner.run(_command("container", action, **params))
        assert result.status == "failed", action
        assert reason in result.output, (action, result.output)
    bad_spec = await runner.run(_command("container", "create", spec={"id": "x"}))
    assert bad_spec.status == "failed" and "spec.image" in bad_spec.output
    listing = await runner.run(_command("container", "list"))
    assert listing.status == "failed" and "Docker engine" in listing.output


@pytest.mark.anyio
async def test_a_command_id_runs_once(tmp_path: Any) -> None:
    marker = tmp_path / "runs"
    ledger = CommandLedger(_runner(tmp_path, allow_exec=True))
    command = _command("exec", f"echo run >> {marker}; sleep 0.2; echo done")
    first, second = await asyncio.gather(ledger.submit(command), ledger.submit(command))
    third = await ledger.submit(command)
    assert first[0] == second[0] == third[0] and first[0].output == "done"
    assert sorted([first[1], second[1], third[1]]) == [False, False, True]
    assert marker.read_text() == "run\n"
    await ledger.close()


_SECRETS = {
    "LIGHTD_AUTHORIZATION__TOKEN": "lightd_" + "a1" * 16,
    "LIGHTD_COORDINATOR__TOKEN": "lightd_" + "b2" * 16,
    "LIGHTD_REMOTE__TOKEN": "remote-secret-c3c3c3",
}


@pytest.mark.anyio
async def test_exec_runs_without_the_agents_secrets(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UNRELATED_SETTING", "not-passed-on")
    monkeypatch.setenv("LANG", "C.UTF-8")
    result = await _runner(tmp_path, allow_exec=True).run(_command("exec", "env"))
    assert result.status == "success", result.output
    names = {line.split("=", 1)[0] for line in result.output.splitlines() if "=" in line}
    assert not [n for n in names if n.startswith("LIGHTD_")], result.output
    for value in _SECRETS.values():
        assert value not in result.output
    assert "UNRELATED_SETTING" not in names
    assert "PATH" in names and "LANG=C.UTF-8" in result.output.splitlines()
    which = await _runner(tmp_path, allow_exec=True).run(_command("exec", "command -v sh"))
    assert which.status == "success" and which.output.endswith("/sh")  # PATH still works


def test_exec_environment_keeps_only_the_listed_variables() -> None:
    source = {"HOME": "/root", "TZ": "UTC", "USER": "lightd", "SECRET": "x", **_SECRETS}
    assert exec_environment(source) == {
        "HOME": "/root",
        "TZ": "UTC",
        "USER": "lightd",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    assert exec_environment({"PATH": "/opt/bin", "LC_ALL": "C"}) == {
        "PATH": "/opt/bin",
        "LC_ALL": "C",
    }
