"""The scheduler on the memory backend and a manual clock: time moves only when the test says.

A real :class:`~lightd_agent.core.Agent` (manager, bus, store, scheduler) built with the
memory backend (a real implementation of the backend interface) and ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lightd_agent.backend.memory import MemoryBackend
from lightd_agent.config import AgentConfig
from lightd_agent.core import Agent
from lightd_agent.errors import BadRequest, Conflict, NotFound
from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.schedules import ManualClock, Scheduler
from lightd_shared.containers import ContainerSpec
from lightd_shared.schedules import ScheduleSpec, ScheduleView

T = TypeVar("T")
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        await asyncio.sleep(0.005)


class Rig:
    def __init__(
        self, base: Path, clock: ManualClock, backend: MemoryBackend | None = None
    ) -> None:
        self.base = base
        self.clock = clock
        self.backend = backend or MemoryBackend("unit-node", call_seconds=5)
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
        self.agent = Agent(self.config, bus=self.bus, backend=self.backend, clock=clock)

    @property
    def scheduler(self) -> Scheduler:
        return self.agent.scheduler

    async def start(self) -> None:
        await self.agent.manager.start()
        await self.agent.scheduler.start()

    async def stop(self) -> None:
        await self.agent.scheduler.stop()
        await self.agent.manager.stop()

    async def install(self, server: str, *, running: bool = True) -> None:
        spec = ContainerSpec.model_validate(
            {"id": server, "image": "img", "start_on_completion": running}
        )
        created = await self.agent.manager.create(spec)
        assert created.installer is not None
        await created.installer

    def state(self, server: str) -> str:
        return self.agent.manager.get(server).state

    def schedule_events(self, server: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (e.kind, json.loads(e.data or "{}"))
            for e in self.events
            if e.server == server and e.kind.startswith("schedule_")
        ]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path, ManualClock(START))
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()


def spec(**fields: Any) -> ScheduleSpec:
    body: dict[str, Any] = {
        "name": "restart then stop",
        "cron": "*/5 * * * *",
        "tasks": [
            {"action": "power", "payload": "restart"},
            {"action": "power", "payload": "stop", "delay": "30s"},
        ],
    }
    body.update(fields)
    return ScheduleSpec.model_validate_json(json.dumps(body))


def at(minute: int, second: int = 0) -> datetime:
    return START.replace(minute=minute, second=second)


@pytest.mark.anyio
async def test_a_two_task_chain_runs_on_time_with_its_delay(rig: Rig) -> None:
    await rig.install("s1")
    view = rig.scheduler.create("s1", spec(id="nightly"))
    assert view.next_run == at(5)
    assert view.last_result is None
    await until(lambda: at(5) in rig.clock.sleepers(), "the ticker asleep until 12:05")
    rig.clock.set(at(4, 59))  # a second early: the ticker still sleeps, nothing ran
    assert at(5) in rig.clock.sleepers()
    assert rig.schedule_events("s1") == []

    rig.clock.set(at(5))
    # the restart ran, the stop waits for its 30 s delay after the restart ended
    await until(lambda: at(5, 30) in rig.clock.sleepers(), "the stop's delay")
    assert rig.state("s1") == "running"
    running = rig.scheduler.view("s1", "nightly")
    assert running.running and running.last_result is not None
    assert running.last_result.outcome == "running"
    assert [t.outcome for t in running.last_result.tasks] == ["success"]
    assert running.next_run == at(10)

    rig.clock.set(at(5, 30))
    done = await until(
        lambda: (
            (v := rig.scheduler.view("s1", "nightly")).last_result is not None
            and v.last_result.outcome == "success"
            and v
        ),
        "the run to end",
    )
    assert isinstance(done, ScheduleView)
    assert done.last_result is not None
    assert done.last_result.trigger == "cron"
    assert done.last_result.started == at(5)
    assert done.last_result.finished == at(5, 30)
    assert [(t.action, t.outcome) for t in done.last_result.tasks] == [
        ("power", "success"),
        ("power", "success"),
    ]
    assert done.last_result.tasks[1].started == at(5, 30)
    assert rig.state("s1") == "stopped"
    kinds = [kind for kind, _ in rig.schedule_events("s1")]
    assert kinds == ["schedule_started", "schedule_task", "schedule_task", "schedule_finished"]
    finished = rig.schedule_events("s1")[-1][1]
    assert finished["schedule"] == "nightly" and finished["outcome"] == "success"
    # restart (Running), then stop (Stopped) went through the server's own lifecycle
    lifecycle = [
        e.kind for e in rig.events if e.server == "s1" and e.kind in {"Running", "Stopped"}
    ]
    assert lifecycle[-2:] == ["Running", "Stopped"]


@pytest.mark.anyio
async def test_only_when_running_skips_a_stopped_server(rig: Rig) -> None:
    await rig.install("s2", running=False)
    rig.scheduler.create("s2", spec(id="guarded", only_when_running=True))
    await until(lambda: at(5) in rig.clock.sleepers(), "the ticker asleep")
    rig.clock.set(at(5))
    view = await until(
        lambda: (v := rig.scheduler.view("s2", "guarded")).last_result is not None and v,
        "the skipped run",
    )
    assert isinstance(view, ScheduleView) and view.last_result is not None
    assert view.last_result.outcome == "skipped"
    assert "not running (only_when_running)" in (view.last_result.error or "")
    assert view.last_result.tasks == []
    assert rig.state("s2") == "ready"
    assert [k for k, _ in rig.schedule_events("s2")] == ["schedule_skipped"]


@pytest.mark.anyio
async def test_a_schedule_never_runs_twice_at_once(rig: Rig) -> None:
    await rig.install("s3")
    rig.scheduler.create("s3", spec(id="slow", tasks=[{"action": "power", "payload": "restart"}]))
    rig.backend.hold("stop")  # the restart's stop waits until released
    rig.scheduler.run_now("s3", "slow")
    await until(lambda: rig.scheduler.view("s3", "slow").running, "the run to be going")
    with pytest.raises(Conflict, match="running already"):
        rig.scheduler.run_now("s3", "slow")
    await until(lambda: at(5) in rig.clock.sleepers(), "the ticker asleep")
    rig.clock.set(at(5))  # the cron fires while the run is still going: skipped, recorded
    view = await until(
        lambda: (
            (v := rig.scheduler.view("s3", "slow")).last_skipped is not None
            and v.last_skipped.trigger == "cron"
            and v
        ),
        "the cron trigger to be skipped",
    )
    assert isinstance(view, ScheduleView) and view.last_skipped is not None
    assert "still running" in view.last_skipped.reason
    rig.backend.release("stop")
    done = await until(
        lambda: (
            (v := rig.scheduler.view("s3", "slow")).last_result is not None
            and v.last_result.outcome == "success"
            and v
        ),
        "the run to end",
    )
    assert isinstance(done, ScheduleView) and done.last_result is not None
    assert done.last_result.trigger == "run_now"
    kinds = [k for k, _ in rig.schedule_events("s3")]
    assert kinds.count("schedule_started") == 1
    assert kinds.count("schedule_skipped") == 2  # the second run-now and the cron trigger


@pytest.mark.anyio
async def test_a_failed_task_stops_the_chain_unless_it_continues(rig: Rig) -> None:
    await rig.install("s4")
    rig.scheduler.create(
        "s4",
        spec(
            id="chain",
            tasks=[
                {"action": "backup", "continue_on_failure": True},
                {"action": "command", "payload": "say hi"},
                {"action": "backup"},
                {"action": "power", "payload": "stop"},
            ],
        ),
    )
    rig.scheduler.run_now("s4", "chain")
    view = await until(
        lambda: (
            (v := rig.scheduler.view("s4", "chain")).last_result is not None
            and v.last_result.finished is not None
            and v
        ),
        "the run to end",
    )
    assert isinstance(view, ScheduleView) and view.last_result is not None
    result = view.last_result
    assert result.outcome == "failed"
    assert [t.outcome for t in result.tasks] == ["failed", "success", "failed", "skipped"]
    # the backup task went through the backup service: the server has no volume directory here
    assert "does not exist" in (result.tasks[0].error or ""), result.tasks[0].error
    # the command task went through the console's stdin writer to the server's stdin
    assert rig.backend.stdin["s4"] == [b"say hi\n"]
    assert rig.state("s4") == "running"  # the stop never ran


@pytest.mark.anyio
async def test_a_backup_task_waits_for_the_backup_and_succeeds_with_it(rig: Rig) -> None:
    await rig.install("s7")
    volume = rig.config.storage.volumes_dir / "s7"
    volume.mkdir(parents=True, exist_ok=True)
    (volume / "world.dat").write_bytes(b"level data")
    rig.scheduler.create("s7", spec(id="nightly", tasks=[{"action": "backup"}]))
    rig.scheduler.run_now("s7", "nightly")
    view = await until(
        lambda: (
            (v := rig.scheduler.view("s7", "nightly")).last_result is not None
            and v.last_result.finished is not None
            and v
        ),
        "the run to end",
    )
    assert isinstance(view, ScheduleView) and view.last_result is not None
    assert [t.outcome for t in view.last_result.tasks] == ["success"]
    # the task ended only once the backup had: it is there, completed, holding the file
    backups = rig.agent.backups.listing("s7")
    assert [b.state for b in backups] == ["completed"]
    assert backups[0].size is not None and backups[0].files is not None and backups[0].files >= 1


@pytest.mark.anyio
async def test_a_command_task_on_a_stopped_server_fails_with_the_consoles_reason(rig: Rig) -> None:
    await rig.install("s6", running=False)
    rig.scheduler.create("s6", spec(id="say", tasks=[{"action": "command", "payload": "say hi"}]))
    rig.scheduler.run_now("s6", "say")
    view = await until(
        lambda: (
            (v := rig.scheduler.view("s6", "say")).last_result is not None
            and v.last_result.finished is not None
            and v
        ),
        "the run to end",
    )
    assert isinstance(view, ScheduleView) and view.last_result is not None
    assert [t.outcome for t in view.last_result.tasks] == ["failed"]
    assert "the console needs it running" in (view.last_result.tasks[0].error or "")


@pytest.mark.anyio
async def test_bad_input_and_unknown_names(rig: Rig) -> None:
    await rig.install("s5")
    with pytest.raises(BadRequest, match="out of range"):
        rig.scheduler.create("s5", spec(cron="61 * * * *"))
    with pytest.raises(BadRequest, match="never fires"):
        rig.scheduler.create("s5", spec(cron="0 0 31 2 *"))
    with pytest.raises(NotFound, match="no server"):
        rig.scheduler.create("nope", spec())
    with pytest.raises(NotFound, match="no schedule"):
        rig.scheduler.view("s5", "nope")
    rig.scheduler.create("s5", spec(id="one"))
    with pytest.raises(Conflict, match="already has"):
        rig.scheduler.create("s5", spec(id="one"))
    assert [v.id for v in rig.scheduler.list("s5")] == ["one"]


@pytest.mark.anyio
async def test_deleting_the_server_deletes_its_schedules(rig: Rig, tmp_path: Path) -> None:
    await rig.install("s6")
    rig.scheduler.create("s6", spec(id="gone"))
    await rig.agent.manager.delete("s6")
    assert rig.scheduler.store.all() == []
    await until(lambda: at(5) not in rig.clock.sleepers(), "the ticker to stop")


@pytest.mark.parametrize("policy", ["run_once", "skip"])
@pytest.mark.anyio
async def test_a_run_missed_while_down_follows_the_missed_policy(
    tmp_path: Path, policy: str
) -> None:
    clock = ManualClock(START)
    first = Rig(tmp_path, clock)
    await first.start()
    await first.install("s7")
    first.scheduler.create(
        "s7", spec(id="m", missed=policy, tasks=[{"action": "power", "payload": "restart"}])
    )
    await first.stop()

    clock.advance(timedelta(minutes=12))  # 12:05 and 12:10 pass while the agent is down
    # the same engine: the server's container is still there
    second = Rig(tmp_path, clock, backend=first.backend)
    await second.start()
    try:
        if policy == "run_once":
            view = await until(
                lambda: (
                    (v := second.scheduler.view("s7", "m")).last_result is not None
                    and v.last_result.outcome == "success"
                    and v
                ),
                "the missed run",
            )
            assert isinstance(view, ScheduleView) and view.last_result is not None
            assert view.last_result.trigger == "missed"
            assert view.last_result.started == at(12)
            assert [k for k, _ in second.schedule_events("s7")].count("schedule_started") == 1
        else:
            view = second.scheduler.view("s7", "m")
            assert view.last_result is None
            assert view.last_skipped is not None and view.last_skipped.trigger == "missed"
            assert [k for k, _ in second.schedule_events("s7")] == ["schedule_skipped"]
        assert view.next_run == at(15)
    finally:
        await second.stop()


def test_cron_reads_its_timezone_across_dst() -> None:
    from lightd_agent.schedules.cron import next_after

    winter = next_after("0 4 * * *", "Europe/Berlin", datetime(2026, 1, 10, tzinfo=UTC))
    summer = next_after("0 4 * * *", "Europe/Berlin", datetime(2026, 7, 10, tzinfo=UTC))
    assert winter == datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 10, 2, 0, tzinfo=UTC)
    assert next_after("*/5 * * * *", "UTC", at(5)) == at(10)  # strictly after


@pytest.mark.anyio
async def test_the_manual_clock_wakes_only_who_is_due() -> None:
    clock = ManualClock(START)
    early = asyncio.create_task(clock.sleep_until(at(1)))
    late = asyncio.create_task(clock.sleep_until(at(2)))
    await until(lambda: clock.sleepers() == [at(1), at(2)], "both asleep")
    clock.advance(60)
    await asyncio.wait_for(early, 5)
    assert not late.done() and clock.sleepers() == [at(2)]
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(START)
    clock.set(at(3))
    await asyncio.wait_for(late, 5)
    await asyncio.wait_for(clock.sleep_until(at(0)), 5)  # a time already past: at once
