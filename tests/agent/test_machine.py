"""The servers' state machine and its rules on the in-memory backend: no engine, fast.

The same flows run on the real engine in the other tests of this folder; these pin the rules
(table, crash policy, power serialisation, recovery, drain) so each runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lightd_agent.backend.base import EngineError, InstallOutcome
from lightd_agent.backend.memory import MemoryBackend
from lightd_agent.config import AgentConfig
from lightd_agent.errors import Conflict, DockerTimeout
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.servers import STATES, TRANSITIONS, Cause, IllegalTransition, ServerManager
from lightd_agent.servers.machine import table_markdown
from lightd_agent.servers.model import Server
from lightd_shared.containers import CONTAINER_STATES, ContainerSpec
from tests.harness.wait import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Rig:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.backend = MemoryBackend("unit-node", call_seconds=0.5)
        self.bus = EventBus()
        self.events: list[LifecycleEvent] = []
        self.bus.add_listener(self.events.append)
        self.config = AgentConfig.model_validate(
            {
                "authorization": {"enabled": False},
                "storage": {"base_path": str(base)},
                "node": {"id": "unit-node"},
                "docker": {"reconnect_interval": "10ms"},
            },
            strict=False,
        )
        self.manager = self.new_manager()

    def new_manager(self) -> ServerManager:
        return ServerManager(self.config, self.backend, self.bus)

    def kinds(self, server: str) -> list[str]:
        return [e.kind for e in self.events if e.server == server]

    async def install(self, server: str, **fields: Any) -> Server:
        spec = ContainerSpec.model_validate({"id": server, "image": "img", **fields})
        created = await self.manager.create(spec)
        assert created.installer is not None
        await created.installer
        return created


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    await rig.manager.start()
    try:
        yield rig
    finally:
        await rig.manager.stop()


# -- the table ----------------------------------------------------------------------------


def test_states_are_the_wire_words_exactly() -> None:
    assert STATES == (
        "installing",
        "ready",
        "running",
        "stopping",
        "stopped",
        "crashed",
        "failed",
    )
    assert STATES == CONTAINER_STATES
    for (source, _), rule in TRANSITIONS.items():
        assert source in STATES and (rule.to is None or rule.to in STATES)


def test_architecture_doc_shows_the_table_of_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    assert table_markdown() in doc, "docs/architecture.md: paste table_markdown()'s output"


async def test_an_illegal_transition_raises_and_changes_nothing(rig: Rig) -> None:
    server = await rig.install("s1", start_on_completion=False)
    assert server.state == "ready"
    before = list(rig.events)
    saved = rig.manager.store.path("s1").read_text()
    with pytest.raises(IllegalTransition, match="from 'ready' on 'crash'"):
        rig.manager.machine.move(server, Cause.CRASH)
    assert server.state == "ready"
    assert rig.events == before
    assert rig.manager.store.path("s1").read_text() == saved


async def test_every_transition_persists_then_publishes_once(rig: Rig) -> None:
    server = await rig.install("s1")
    assert rig.kinds("s1") == ["Started", "CreatingContainer", "Ready", "Running"]
    assert rig.manager.store.path("s1").read_text().count('"running"') == 1
    # a listener sees the state file already written for the event it gets
    seen: list[str] = []
    rig.bus.add_listener(lambda e: seen.append(rig.manager.store.path(e.server).read_text()))
    await rig.manager.power("s1", "stop")
    assert server.state == "stopped"
    assert rig.kinds("s1")[-1] == "Stopped" and rig.kinds("s1").count("Stopped") == 1
    assert '"stopped"' in seen[-1]


async def test_a_read_answers_only_a_durable_state_and_a_stalled_disk_cannot_hang_it(
    rig: Rig,
) -> None:
    """``settle_reads`` (every route and command that reads states calls it first): a state
    that is read has its event already published; a writer that hangs delays reads only up to
    the bound."""
    server = await rig.install("s1", start_on_completion=False)
    release = threading.Event()
    entered = threading.Event()

    def hold(events: list[LifecycleEvent]) -> None:  # the writer thread, mid-group
        entered.set()
        release.wait(timeout=30)

    detach = rig.bus.add_batch_listener(hold)
    try:
        rig.manager.machine.move(server, Cause.START)  # in memory now, durable later
        assert server.state == "running" and "Running" not in rig.kinds("s1")
        assert await asyncio.to_thread(entered.wait, 30)
        reading = asyncio.create_task(rig.manager.settle_reads())
        await asyncio.sleep(0.05)  # the read must still be waiting: the change is not durable
        assert not reading.done()
        release.set()
        await asyncio.wait_for(reading, 10)
        assert rig.kinds("s1")[-1] == "Running"  # what the read then shows was published

        release.clear()
        entered.clear()
        rig.manager.machine.move(server, Cause.STOP)
        rig.manager.machine.move(server, Cause.STOPPED)
        assert await asyncio.to_thread(entered.wait, 30)
        began = asyncio.get_running_loop().time()
        await rig.manager.settle_reads(timeout=0.2)  # the disk "hangs": the read goes on
        assert 0.2 <= asyncio.get_running_loop().time() - began < 5
        assert "Stopped" not in rig.kinds("s1")[-1:]
    finally:
        release.set()
        detach()
    await rig.manager.machine.settled()
    assert rig.kinds("s1")[-1] == "Stopped"


async def test_an_action_right_after_the_install_waits_for_it_instead_of_a_409(
    rig: Rig,
) -> None:
    """A client that waited for ``ready`` (the install's start still to come, or its last
    change being made durable) and then acts is not told "installing"."""
    rig.backend.hold("start")
    spec = ContainerSpec.model_validate({"id": "s1", "image": "img"})
    server = await rig.manager.create(spec)
    await until(lambda: server.state == "ready")
    assert server.installing()  # the install's task still has the start to do
    stopping = asyncio.create_task(rig.manager.power("s1", "stop"))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waiting for the install, not refused
    rig.backend.release("start")
    assert (await asyncio.wait_for(stopping, 10)).state == "stopped"
    assert rig.kinds("s1")[-2:] == ["Running", "Stopped"]


# -- install and start errors ---------------------------------------------------------------


async def test_a_port_conflict_after_the_install_publishes_one_error(rig: Rig) -> None:
    rig.backend.taken_ports.add(25565)
    server = await rig.install("p1", ports=[{"container": 25565, "host": 25565}])
    assert server.state == "ready"
    assert rig.kinds("p1") == ["Started", "CreatingContainer", "Ready", "Error"]
    error = rig.events[-1]
    assert error.state == "ready" and "port is already allocated" in (error.data or "")


async def test_a_port_conflict_on_start_publishes_one_error(rig: Rig) -> None:
    await rig.install("p2", ports=[{"container": 80, "host": 18080}], start_on_completion=False)
    rig.backend.taken_ports.add(18080)
    with pytest.raises(Conflict, match="port is already allocated"):
        await rig.manager.power("p2", "start")
    assert rig.kinds("p2")[-1] == "Error" and rig.kinds("p2").count("Error") == 1


async def test_another_engine_error_on_start_is_published_and_resynced(rig: Rig) -> None:
    await rig.install("e1", start_on_completion=False)
    rig.backend.fail_next("start", EngineError("exec: /missing: no such file or directory"))
    with pytest.raises(Conflict, match="no such file"):
        await rig.manager.power("e1", "start")
    assert rig.kinds("e1")[-1] == "Error"
    assert rig.events[-1].state == "ready"
    assert rig.manager.get("e1").error == (
        "start failed: cannot start server 'e1': exec: /missing: no such file or directory"
    )


async def test_a_failed_stop_never_leaves_stopping(rig: Rig) -> None:
    await rig.install("t1")
    rig.backend.fail_next("stop", DockerTimeout("Docker did not answer"))
    with pytest.raises(DockerTimeout):
        await rig.manager.power("t1", "stop")
    server = rig.manager.get("t1")
    assert server.state == "running"  # Docker says it still runs
    assert rig.events[-1].kind == "Error" and rig.events[-1].error == "timeout"


async def test_install_script_failures_name_the_output(rig: Rig) -> None:
    rig.backend.install_outcomes["i1"] = InstallOutcome(3, "one\ntwo\n")
    rig.backend.install_outcomes["i2"] = InstallOutcome(3, "")
    one = await rig.install("i1", install_script="exit 3")
    two = await rig.install("i2", install_script="exit 3")
    assert one.state == two.state == "failed"
    assert one.error == "install script exited with code 3; last lines of output:\none\ntwo"
    assert two.error == "install script exited with code 3; last lines of output:\n(no output)"


async def test_a_missing_image_fails_the_install(rig: Rig) -> None:
    rig.backend.missing_images.add("gone")
    server = await rig.install("m1", image="gone")
    assert server.state == "failed" and "not found locally" in (server.error or "")
    assert rig.kinds("m1") == ["Started", "Error"]


async def test_the_create_looks_up_the_image_once_beside_its_container_check(rig: Rig) -> None:
    mark = len(rig.backend.calls)
    await rig.install("look")
    calls = rig.backend.calls[mark:]
    # made together, before the 202; the install then begins with the volume
    assert calls[:2] == ["list_owned", "has_image"] or calls[:2] == ["has_image", "list_owned"]
    assert "ensure_image" not in calls
    assert rig.manager.get("look").state == "running"


async def test_a_failed_image_lookup_leaves_the_install_to_ensure_it(rig: Rig) -> None:
    rig.backend.fail_next("has_image", DockerTimeout("Docker did not answer"))
    server = await rig.install("slow")
    assert server.state == "running" and rig.backend.calls.count("ensure_image") == 1
    rig.backend.fail_next("has_image", DockerTimeout("Docker did not answer"))
    rig.backend.missing_images.add("gone")
    missing = await rig.install("lost", image="gone")
    assert missing.state == "failed" and "not found locally" in (missing.error or "")


async def test_a_reinstall_looks_for_its_image_again(rig: Rig) -> None:
    server = await rig.install("again")
    rig.backend.missing_images.add("img")  # gone since the create
    await rig.manager.reinstall("again", 1.0)
    assert server.installer is not None
    await server.installer
    assert server.state == "failed" and "not found locally" in (server.error or "")
    assert rig.kinds("again")[-2:] == ["ReinstallStarted", "Error"]


# -- crashes and the restart policy -------------------------------------------------------


async def test_crash_restarts_within_the_policy_then_stays_crashed(tmp_path: Path) -> None:
    now = [1000.0]
    rig = Rig(tmp_path)
    rig.manager.crashes._clock = lambda: now[0]
    await rig.manager.start()
    try:
        policy = {"enabled": True, "max_restarts": 2, "window": "1m"}
        await rig.install("c1", restart_policy=policy)
        for round_ in (1, 2):
            rig.backend.crash("c1", 3)
            await until(lambda n=round_: rig.kinds("c1").count("Running") == n + 1)
        rig.backend.crash("c1", 3)
        await until(lambda: rig.manager.get("c1").state == "crashed")
        server = rig.manager.get("c1")
        assert "not restarted: the restart policy allows 2 restarts in 60s" in (server.error or "")
        # the window moves on (an injected clock, not a wait): a crash may restart again
        now[0] += 61
        await rig.manager.power("c1", "start")
        assert rig.kinds("c1").count("Running") == 4
        rig.backend.crash("c1", 3)
        await until(lambda: rig.kinds("c1").count("Running") == 5)
        assert rig.kinds("c1")[-2:] == ["Crashed", "Running"]
    finally:
        await rig.manager.stop()


async def test_an_oom_crash_says_so(rig: Rig) -> None:
    await rig.install("o1", restart_policy={"enabled": False})
    rig.backend.crash("o1", 137, oom=True)
    await until(lambda: "Crashed" in rig.kinds("o1"))  # published once durable
    assert rig.manager.get("o1").state == "crashed"
    assert "out of memory" in (rig.manager.get("o1").error or "")
    crashed = [e for e in rig.events if e.kind == "Crashed"]
    assert len(crashed) == 1 and crashed[0].exit_code == 137


async def test_an_asked_for_stop_is_no_crash(rig: Rig) -> None:
    await rig.install("n1")
    await rig.manager.power("n1", "kill")
    await asyncio.sleep(0)  # the die event is delivered on the next loop turn
    await until(lambda: "die" not in [t.get_name()[:3] for t in rig.manager._tasks])
    assert "Crashed" not in rig.kinds("n1")
    assert rig.manager.get("n1").state == "stopped"


# -- power serialisation ------------------------------------------------------------------


async def test_power_actions_on_one_server_never_interleave(rig: Rig) -> None:
    await rig.install("w1")
    rig.backend.hold("stop")
    first = asyncio.create_task(rig.manager.power("w1", "restart"))
    await until(lambda: "stop" in rig.backend.calls)
    second = asyncio.create_task(rig.manager.power("w1", "kill"))
    await until(lambda: rig.manager.get("w1").lock.locked())
    calls = len(rig.backend.calls)
    for _ in range(50):  # many turns of the loop: the kill still waits for the lock
        await asyncio.sleep(0)
    assert len(rig.backend.calls) == calls and not second.done()
    rig.backend.release("stop")
    await first
    await second
    tail = rig.backend.calls[calls:]
    assert tail.index("start") < tail.index("kill")
    assert rig.manager.get("w1").state == "stopped"


async def test_another_server_is_not_held_by_a_busy_one(rig: Rig) -> None:
    await rig.install("b1")
    await rig.install("b2")
    rig.backend.hold("stop")
    busy = asyncio.create_task(rig.manager.power("b1", "stop"))
    await until(lambda: "stop" in rig.backend.calls)
    await rig.manager.power("b2", "kill")
    assert rig.manager.get("b2").state == "stopped"
    rig.backend.release("stop")
    await busy


# -- recovery -------------------------------------------------------------------------------


async def test_recovery_rules(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.manager.start()
    await rig.install("died", restart_policy={"enabled": False})
    await rig.install("gone")
    await rig.install("kept")
    await rig.manager.stop()
    # while nobody watches: one container dies, one is removed, one install is left behind,
    # one container of this node has no state file
    rig.backend.available = True
    rig.backend.crash("died", 9)
    rig.backend.remove_outside("gone")
    rig.backend.add(ContainerSpec(id="kept", image="img"), role="install")
    orphan = ContainerSpec(id="orphan", image="img")
    rig.backend.add(orphan, running=True)
    rig.events.clear()
    rig.manager = rig.new_manager()
    await rig.manager.start()
    try:
        manager = rig.manager
        assert manager.get("died").state == "crashed"
        assert manager.get("gone").state == "failed"
        assert "removed outside the agent" in (manager.get("gone").error or "")
        assert manager.get("kept").state == "running"
        assert manager.get("orphan").state == "running"
        assert [c.role for c in await rig.backend.list_owned("kept")] == ["server"]
        assert rig.kinds("died") == ["Crashed"]
        assert rig.kinds("gone") == ["Error"]
        assert rig.kinds("kept") == []
    finally:
        await rig.manager.stop()


async def test_an_install_cut_off_is_failed_at_the_next_start(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.manager.start()
    rig.backend.hold("run_install")
    spec = ContainerSpec(id="cut", image="img", install_script="sleep 9")
    await rig.manager.create(spec)
    await until(lambda: "run_install" in rig.backend.calls)
    await rig.manager.stop()
    rig.backend.release("run_install")
    rig.manager = rig.new_manager()
    await rig.manager.start()
    try:
        server = rig.manager.get("cut")
        assert server.state == "failed" and "cut off" in (server.error or "")
    finally:
        await rig.manager.stop()


async def test_docker_loss_then_reconcile(rig: Rig) -> None:
    await rig.install("l1", restart_policy={"enabled": False})
    rig.backend.lose()
    with pytest.raises(Exception, match="unreachable"):
        await rig.manager.power("l1", "stop")
    rig.backend.available = True  # the container dies while the agent cannot see it
    rig.backend.crash("l1", 4)
    rig.backend.available = False
    rig.backend.reachable = True
    # the event is published once its change is durable, a commit after the state in memory
    await until(lambda: rig.kinds("l1")[-1:] == ["Crashed"], timeout=5)
    assert rig.manager.get("l1").state == "crashed"


# -- shutdown drain -----------------------------------------------------------------------


async def test_stop_drains_running_actions_within_the_grace(rig: Rig) -> None:
    await rig.install("d1")
    rig.backend.hold("stop")
    action = asyncio.create_task(rig.manager.power("d1", "stop"))
    await until(lambda: "stop" in rig.backend.calls)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, rig.backend.release, "stop")
    cancelled = await rig.manager.drain(grace=5)
    assert cancelled == []
    assert (await action).state == "stopped"


async def test_drain_cancels_what_outlives_the_grace(rig: Rig) -> None:
    rig.backend.hold("run_install")
    await rig.manager.create(ContainerSpec(id="slow", image="img", install_script="sleep 9"))
    await until(lambda: "run_install" in rig.backend.calls)
    cancelled = await rig.manager.drain(grace=0.05)
    assert cancelled == ["install of slow"]
    rig.backend.release("run_install")
