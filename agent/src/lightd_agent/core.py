"""The running agent's parts, built once per app and reached by routes through ``api/deps.py``.

:class:`Agent` holds the configuration, the event bus, the Docker backend, the server manager,
the command ledger and this node's dispatch key; the subsystems started with it (remote sync,
the extra ``remotes``, enrolment) put themselves on it while they run, and the sections they
add to ``GET /health`` go to :attr:`Agent.health_sections`. ``app.state.agent`` is the only
attribute on ``app.state``.

Who listens on the bus: remote sync's outboxes (durable listeners and gates, see
:mod:`lightd_agent.remote.subsystem`), enrolment (services changed) and ``GET /events``.

Shutdown drains (:meth:`Agent.begin_drain`): new work is refused with 503 and the reason,
running installs and power actions get ``server.shutdown_grace`` to finish, then what is
left is cancelled and named in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightd_agent.backend.base import Backend
from lightd_agent.backend.docker_sdk import DockerBackend
from lightd_agent.backups import BackupService
from lightd_agent.command_ledger import SEEN_COMMANDS_FILE, CommandLedger, SeenCommands
from lightd_agent.commands import CommandRunner
from lightd_agent.config import AgentConfig
from lightd_agent.console.service import Console
from lightd_agent.events import EventBus
from lightd_agent.files import FileService
from lightd_agent.schedules import (
    SCHEDULES_FILE,
    AgentTaskActions,
    Clock,
    Scheduler,
    ScheduleStore,
    SystemClock,
)
from lightd_agent.security import load_dispatch_key
from lightd_agent.servers import ServerManager

if TYPE_CHECKING:
    from lightd_agent.enrolment import Enrolment
    from lightd_agent.remote.sync import RemoteSync

__all__ = ["Agent", "Subsystem"]

log = logging.getLogger(__name__)

Subsystem = Callable[["Agent"], AbstractAsyncContextManager[Any]]
"""A part started with the agent and stopped with it (remote sync, enrolment)."""


class Agent:
    """Config, bus, backend, manager, command ledger and the running subsystems."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        config_path: Path | None = None,
        bus: EventBus | None = None,
        backend: Backend | None = None,
        subsystems: list[Subsystem] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.bus = bus or EventBus()
        self.backend: Backend = backend or DockerBackend(
            config.docker, node_id=config.node.id, volumes_dir=config.storage.volumes_dir
        )
        self.manager = ServerManager(config, self.backend, self.bus)
        self.backups = BackupService(config, self.manager, self.bus)
        self.console = Console(config.console, self.manager)
        self.files = FileService(config, self.manager)
        self.dispatch_key: str = load_dispatch_key(config.storage.state_dir)
        self.clock: Clock = clock or SystemClock()
        self.scheduler = Scheduler(
            ScheduleStore(config.storage.state_dir / SCHEDULES_FILE),
            AgentTaskActions(self.manager, self.bus, self.console, self.backups),
            self.clock,
            self.bus,
        )
        """Scheduled tasks (``lightd_agent.schedules``), started after the manager."""
        self.commands = CommandLedger(
            CommandRunner(
                config.commands,
                self.manager,
                self.bus,
                config.node.id,
                backups=self.backups,
                scheduler=self.scheduler,
                files=self.files,
            ),
            seen=SeenCommands(config.storage.state_dir / SEEN_COMMANDS_FILE),
        )
        self.subsystems: list[Subsystem] = list(subsystems or [])
        self.health_sections: dict[str, Callable[[], Any]] = {
            "storage": self.manager.machine.storage_health
        }
        self.remote_sync: RemoteSync | None = None
        self.extra_remotes: dict[str, RemoteSync] = {}
        self.enrolment: Enrolment | None = None
        self.draining: str | None = None
        """Why new work is refused (503) while the agent shuts down; ``None`` while it runs."""

    def begin_drain(self) -> None:
        """Refuse new work from now on (every route but ``/health`` answers 503)."""
        if self.draining is None:
            self.draining = (
                "the agent is shutting down; retry against it once it is back, or another node"
            )
            log.info(
                "shutting down: new requests are refused; waiting up to %s for running work",
                self.config.server.shutdown_grace,
            )

    async def drain(self) -> list[str]:
        """Refuse new work, wait for installs and power actions, cancel what outlives the grace."""
        self.begin_drain()
        return await self.manager.drain(self.config.server.shutdown_grace.total_seconds())
