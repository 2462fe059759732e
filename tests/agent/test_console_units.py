"""The console and the install logs on the memory backend: fast checks of the rules.

The throttle and line bounds (:mod:`lightd_agent.backend.lines`) are pure and run with an
injected clock; the console's refusals and the install log's durability run on a
:class:`~lightd_agent.backend.memory.MemoryBackend` (a real implementation of the backend).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lightd_agent.backend.base import InstallOutcome
from lightd_agent.backend.lines import Dropped, LineBudget, LineShaper, cut_marker
from lightd_agent.backend.memory import MemoryBackend
from lightd_agent.config import AgentConfig
from lightd_agent.console.install_log import InstallLogs, cut_notice
from lightd_agent.console.service import Console
from lightd_agent.errors import BadRequest, Conflict, NotFound
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.servers import ServerManager
from lightd_shared.commands import COMMAND, ConsoleCommand
from lightd_shared.console import MAX_CONSOLE_COMMAND, ConsoleInput
from lightd_shared.containers import ContainerSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- lines: split, bound, throttle ------------------------------------------------------------
def test_lines_keep_blank_lines_and_join_pieces_of_one_line() -> None:
    shaper = LineShaper(None, 1024)
    items = shaper.feed(b"first\n\n") + shaper.feed(b"sec") + shaper.feed(b"ond\nlast")
    assert items == ["first", "", "second"]
    assert shaper.end() == ["last"]


def test_a_long_line_is_cut_at_the_bound_and_marked() -> None:
    shaper = LineShaper(None, 10)
    items = shaper.feed(b"0123456789abc") + shaper.feed(b"def\nshort\n")
    assert items == ["0123456789" + cut_marker(6), "short"]


def test_the_budget_drops_past_its_window_and_says_how_many() -> None:
    clock = Clock()
    budget = LineBudget(3, 0.1, clock=clock)
    shaper = LineShaper(budget, 1024)
    items = shaper.feed(b"".join(b"line %d\n" % i for i in range(10)))
    assert items == ["line 0", "line 1", "line 2"]
    clock.now = 0.1  # the next window
    assert shaper.feed(b"later\n") == [Dropped(7), "later"]
    assert shaper.dropped_total == 7
    assert shaper.feed(b"a\nb\nc\n") == ["a", "b"]  # the window holds 3: later, a, b
    assert shaper.end() == [Dropped(1)]


def test_the_backlog_passes_free_and_follows_of_one_server_share_the_budget() -> None:
    clock = Clock()
    budget = LineBudget(2, 0.1, clock=clock)
    first = LineShaper(budget, 1024, free=3)
    assert first.feed(b"a\nb\nc\n") == ["a", "b", "c"]  # the backlog: free
    second = LineShaper(budget, 1024)
    assert first.feed(b"d\n") == ["d"]
    assert second.feed(b"e\nf\n") == ["e"]  # one left in the shared window
    assert second.end() == [Dropped(1)]


# -- the console's input ----------------------------------------------------------------------
def test_a_console_command_is_one_bounded_line() -> None:
    assert ConsoleInput.model_validate({"command": "say hello\tthere"}).command
    assert ConsoleInput.model_validate({"command": ""}).command == ""
    for bad, words in [
        ("say\nhello", "a newline (U+000A at position 3)"),
        ("say\rhello", "a newline (U+000D"),
        ("bell\x07", "a control character (U+0007"),
        ("del\x7f", "a control character (U+007F"),
    ]:
        with pytest.raises(ValidationError) as caught:
            ConsoleInput.model_validate({"command": bad})
        assert words in str(caught.value)
    with pytest.raises(ValidationError) as long:
        ConsoleInput.model_validate({"command": "x" * (MAX_CONSOLE_COMMAND + 1)})
    assert "at most 4096 characters" in str(long.value)
    typed = COMMAND.validate_python(
        {"type": "container", "action": "console", "params": {"server": "web", "command": "hi"}}
    )
    assert isinstance(typed, ConsoleCommand)
    with pytest.raises(ValidationError) as missing:
        COMMAND.validate_python(
            {"type": "container", "action": "console", "params": {"server": "web"}}
        )
    assert "command" in str(missing.value)


class Rig:
    def __init__(self, base: Path, **console: Any) -> None:
        self.backend = MemoryBackend("unit-node", call_seconds=0.5)
        self.config = AgentConfig.model_validate(
            {
                "authorization": {"enabled": False},
                "storage": {"base_path": str(base)},
                "node": {"id": "unit-node"},
                "console": console,
            },
            strict=False,
        )
        self.manager = ServerManager(self.config, self.backend, EventBus())
        self.console = Console(self.config.console, self.manager)

    async def install(self, server: str, **fields: Any) -> None:
        spec = ContainerSpec.model_validate({"id": server, "image": "img", **fields})
        created = await self.manager.create(spec)
        assert created.installer is not None
        await created.installer


async def test_console_writes_a_line_to_a_running_servers_stdin(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.manager.start()
    try:
        await rig.install("web")
        sent = await rig.console.send("web", "say hello")
        assert sent.bytes == len(b"say hello\n")
        assert rig.backend.stdin["web"] == [b"say hello\n"]
        items = [item async for item in await rig.console.follow("web", None)]
        assert items == ["got: say hello"]

        with pytest.raises(NotFound):
            await rig.console.send("nope", "hi")
        await rig.manager.power("web", "stop")
        with pytest.raises(Conflict) as stopped:
            await rig.console.send("web", "hi")
        assert "is stopped; the console needs it running" in stopped.value.message
        with pytest.raises(BadRequest) as too_much:
            rig.console.backlog(rig.config.console.max_backlog + 1)
        assert "tail" in too_much.value.message
        assert rig.console.backlog(None) == 150
    finally:
        await rig.manager.stop()


async def test_a_server_made_before_the_console_gets_a_409_naming_reinstall(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.manager.start()
    try:
        await rig.install("old")
        container = rig.backend.server_container("old")
        assert container is not None
        # the container as an agent before the console made it: no open stdin
        rig.backend.containers[container.id].info = replace(container, stdin_open=False)
        with pytest.raises(Conflict) as refused:
            await rig.console.send("old", "hi")
        assert "reinstall" in refused.value.message.lower()
        assert "no open stdin" in refused.value.message
        assert rig.backend.stdin["old"] == []
    finally:
        await rig.manager.stop()


# -- install logs -----------------------------------------------------------------------------
async def test_install_log_is_kept_per_kind_and_survives_a_new_manager(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.backend.install_outcomes["web"] = InstallOutcome(0, "fetching\n\nunpacking\n")
    await rig.manager.start()
    try:
        await rig.install("web", install_script="true")
        logs = rig.manager.install_logs
        assert logs.latest("web") == "install"
        assert logs.read("web", "install") == "fetching\n\nunpacking\n"
        rig.backend.install_outcomes["web"] = InstallOutcome(0, "again\n")
        server = await rig.manager.reinstall("web")
        assert server.installer is not None
        await server.installer
        assert logs.latest("web") == "reinstall"
        assert logs.read("web", "reinstall") == "again\n"
        assert logs.read("web", "install") == "fetching\n\nunpacking\n"
    finally:
        await rig.manager.stop()
    again = Rig(tmp_path)  # a new agent on the same storage
    assert again.manager.install_logs.read("web", "install") == "fetching\n\nunpacking\n"
    assert again.manager.install_logs.latest("web") == "reinstall"


async def test_a_failed_install_sends_the_end_of_its_output(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    events: list[LifecycleEvent] = []
    rig.manager.bus.add_listener(events.append)
    output = "".join(f"line {i} " + "x" * 5000 + "\n" for i in range(30)) + "the last words\n"
    rig.backend.install_outcomes["web"] = InstallOutcome(3, output)
    await rig.manager.start()
    try:
        await rig.install("web", install_script="exit 3")
        error = next(e for e in events if e.kind == "Error")
        assert error.data is not None
        assert error.data.startswith("install script exited with code 3; last lines of output:")
        assert error.data.endswith("the last words")
        assert len(error.data) <= 65536
    finally:
        await rig.manager.stop()


async def test_install_log_keeps_its_tail_and_follows_a_running_install(tmp_path: Path) -> None:
    logs = InstallLogs(tmp_path / "logs", 4096)
    running = logs.begin("web", "install")
    for number in range(1000):
        running.write(f"line {number:04d}")
    text = logs.read("web", "install")
    assert text is not None
    assert text.startswith(cut_notice(len(text.split("\n", 1)[1].encode())))
    assert text.endswith("line 0999\n")
    assert len(text.encode()) < 4096 + 100
    follow = await logs.follow("web", "install")
    assert follow is not None
    seen: list[Any] = []
    iterator = follow.__aiter__()
    while not seen or seen[-1] != "line 0999":
        seen.append(await iterator.__anext__())
    running.write("live line")
    assert await iterator.__anext__() == "live line"
    running.close()
    assert [item async for item in iterator] == []
    assert await logs.follow("web", "reinstall") is None
    assert (logs.read("web", "install") or "").endswith("live line\n")
    logs.remove("web")
    assert logs.latest("web") is None
