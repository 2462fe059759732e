"""What the agent does with a coordinator's command (``POST /commands``).

Two types (seed 003, ``lightd_shared.commands``):

- ``exec``: ``action`` runs as ``/bin/sh -c ACTION`` on the host, only when
  ``commands.allow_exec`` is true (off by default: a coordinator token must not mean a root
  shell on every host). Bounded by ``params.timeout`` (default 30 s): on expiry the whole
  process group is killed and the result is ``timeout``. Output (stdout and stderr together)
  is kept up to ``commands.max_output`` bytes. The shell gets a clean environment
  (:func:`exec_environment`): the agent's own holds its secrets (``LIGHTD_*`` tokens), and an
  ``env`` command's output is broadcast on the coordinator's event stream.
- ``container``: ``action`` is one of :data:`CONTAINER_ACTIONS`, mapped onto the agent's own
  :class:`~lightd_agent.lifecycle.ServerManager` (the same code as the REST API, with the same
  policy and gate checks). The command is read as the shared typed union
  (:data:`lightd_shared.commands.Command`): ``params`` that do not fit the action (no
  ``params.server``, a bad ``params.spec``) end ``failed`` naming the field. An agent error
  (unknown server, policy refusal, Docker down) ends ``failed`` with its message. The answer is
  typed in the result's ``data`` (the list, a server's status, a deletion) and ``output`` is one
  line for people (``logs`` and ``exec``: the text).

The ledger that makes a command id run at most once, also across restarts, is
:mod:`lightd_agent.command_ledger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from datetime import timedelta

from pydantic import ValidationError

from lightd_agent.backups.commands import run_backup_command
from lightd_agent.backups.commands import summary as backup_summary
from lightd_agent.backups.service import BackupService
from lightd_agent.config import CommandsSection
from lightd_agent.console.service import console_command
from lightd_agent.disks.commands import run_quota_command, summary
from lightd_agent.errors import AgentError, BadRequest, Unavailable
from lightd_agent.events import EventBus
from lightd_agent.files.commands import is_files_command, run_files_command
from lightd_agent.files.service import FileService
from lightd_agent.lifecycle import Server, ServerManager
from lightd_agent.schedules.commands import ScheduleAnyCommand, run_schedule_command
from lightd_agent.schedules.scheduler import Scheduler
from lightd_shared.backups import BackupInfo, BackupList, BackupRemoved
from lightd_shared.commands import (
    COMMAND,
    CONTAINER_ACTIONS,
    BackupCommand,
    CommandResult,
    CommandStatus,
    ConsoleCommand,
    ContainerAnswer,
    CreateBackupCommand,
    CreateCommand,
    DeleteCommand,
    ExecCommand,
    ExecInsideCommand,
    ListCommand,
    LogsCommand,
    PowerCommand,
    QuotaGetCommand,
    QuotaResizeCommand,
    ScheduleAnswer,
    ServerRemoved,
    StopCommand,
    describe_command_errors,
)
from lightd_shared.containers import ContainerList, ContainerStatus
from lightd_shared.dispatch import AgentCommand
from lightd_shared.quota import QuotaView
from lightd_shared.timestamps import utcnow

__all__ = [
    "CONTAINER_ACTIONS",
    "EXEC_ENVIRONMENT",
    "CommandRunner",
    "exec_environment",
]

log = logging.getLogger(__name__)

_LIFECYCLE = frozenset({"create", "start", "stop", "restart", "kill", "reinstall", "delete"})
_DEFAULT_TIMEOUT = 30.0
EXEC_ENVIRONMENT: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER")
"""The only variables of the agent's environment an exec command's shell inherits."""
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class _Failed(Exception):
    """The command cannot run as asked; the message is the result's output."""


def _status(server: Server) -> ContainerStatus:
    view = server.view()
    return ContainerStatus.model_validate(view.model_dump(exclude={"spec", "ports"}))


def _summary(answer: ContainerAnswer) -> str:
    """The one line for people in ``output`` beside a typed answer."""
    if isinstance(answer, ContainerList):
        return f"{answer.count} server(s)"
    if isinstance(answer, BackupInfo | BackupList | BackupRemoved):
        return backup_summary(answer)
    if isinstance(answer, ServerRemoved):
        return f"{answer.id}: deleted" + (" (volumes removed)" if answer.volumes_removed else "")
    if isinstance(answer, QuotaView):  # a quota: its command says it (disks/)
        return f"{answer.used_mb} of {answer.size_mb} MB used"
    assert isinstance(answer, ContainerStatus)  # files answers are summed up in lightd_agent.files
    return f"{answer.id}: {answer.state}" + (f" ({answer.error})" if answer.error else "")


def exec_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an exec command: :data:`EXEC_ENVIRONMENT` from ``source`` (the
    agent's own by default), those that are set; so never a ``LIGHTD_*`` variable.

    Everything else stays behind: the agent's environment carries its API, coordinator and
    remote tokens, and a command's output ends up on the coordinator's event stream.
    """
    env = dict(os.environ) if source is None else source
    kept = {name: env[name] for name in EXEC_ENVIRONMENT if name in env}
    kept.setdefault("PATH", _DEFAULT_PATH)
    return kept


class CommandRunner:
    """Runs one command to its end and says how it went, never raising."""

    def __init__(
        self,
        settings: CommandsSection,
        manager: ServerManager,
        bus: EventBus,
        node_id: str,
        *,
        backups: BackupService | None = None,
        scheduler: Scheduler | None = None,
        files: FileService | None = None,
    ) -> None:
        self.files = files
        self.settings = settings
        self.manager = manager
        self.bus = bus
        self.node_id = node_id
        self.backups = backups
        self.scheduler = scheduler

    async def run(self, command: AgentCommand) -> CommandResult:
        began = time.monotonic()
        timeout = (
            command.params.timeout.total_seconds()
            if command.params.timeout is not None
            else _DEFAULT_TIMEOUT
        )
        status: CommandStatus
        data: ContainerAnswer | ScheduleAnswer | None = None
        try:
            if command.type == "exec":
                status, output = await self._exec(command.action, timeout)
            else:
                status, output, data = await self._container(command, timeout)
        except _Failed as exc:
            status, output = "failed", str(exc)
        except AgentError as exc:
            status, output = "failed", exc.message
        except Exception as exc:  # a bug must answer failed, not leave the coordinator waiting
            log.exception("command %s failed unexpectedly", command.id)
            status, output = (
                "failed",
                f"agent error while running the command: {type(exc).__name__}",
            )
        result = CommandResult(
            id=command.id,
            node_id=self.node_id,
            status=status,
            output=self._cap(output),
            data=data,
            duration=timedelta(milliseconds=round((time.monotonic() - began) * 1000)),
            finished=utcnow(),
        )
        log.info(
            "command %s (%s %s) ended %s",
            command.id,
            command.type,
            command.action if command.type == "container" else "<shell>",
            status,
            extra={"command_id": command.id, "status": status, "user": command.user},
        )
        return result

    def _cap(self, output: str) -> str:
        raw = output.encode("utf-8", errors="replace")
        limit = self.settings.max_output
        if len(raw) <= limit:
            return output
        kept = raw[:limit].decode("utf-8", errors="ignore")
        return f"{kept}\n… [output truncated: {limit} of {len(raw)} bytes kept]"

    # -- exec ----------------------------------------------------------------------------
    async def _exec(self, action: str, timeout: float) -> tuple[CommandStatus, str]:
        if not self.settings.allow_exec:
            return (
                "failed",
                f"exec commands are disabled on node {self.node_id}: host shell commands run "
                "only where the agent's config sets commands.allow_exec to true "
                "(LIGHTD_COMMANDS__ALLOW_EXEC=true)",
            )
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            action,
            env=exec_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        chunks: list[bytes] = []
        kept = 0

        async def read() -> None:
            nonlocal kept
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                if kept <= self.settings.max_output:
                    chunks.append(chunk)
                    kept += len(chunk)

        reader = asyncio.create_task(read())
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout)
            code = await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            text = b"".join(chunks).decode("utf-8", errors="replace")
            return "timeout", f"{text}\n[killed after {timeout:g}s (params.timeout)]".lstrip("\n")
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        text = b"".join(chunks).decode("utf-8", errors="replace")
        if text.endswith("\n"):
            text = text[:-1]
        if code != 0:
            return "failed", f"{text}\n[exit code {code}]".lstrip("\n")
        return "success", text

    # -- container -----------------------------------------------------------------------
    async def _container(
        self, command: AgentCommand, timeout: float
    ) -> tuple[CommandStatus, str, ContainerAnswer | ScheduleAnswer | None]:
        try:
            typed = COMMAND.validate_json(
                command.model_dump_json(exclude_none=True, exclude={"node_id"})
            )
        except ValidationError as exc:
            problems = describe_command_errors(exc.errors())
            raise BadRequest(f"invalid container command: {problems}") from None
        if isinstance(typed, ExecCommand):  # pragma: no cover - command.type is "container"
            raise _Failed("not a container command")
        if typed.action in _LIFECYCLE:
            reason = self.bus.refusal()
            if reason:
                raise Unavailable(f"lifecycle actions are refused right now: {reason}")
        manager = self.manager
        answer: ContainerAnswer
        if isinstance(typed, ScheduleAnyCommand):
            if self.scheduler is None:
                raise _Failed("scheduled tasks are not available on this agent")
            return run_schedule_command(self.scheduler, typed)
        if is_files_command(typed) and self.files is not None:  # lightd_agent.files.commands
            output, answer = await run_files_command(self.files, typed)
            return "success", output, answer
        if isinstance(typed, ListCommand):
            await manager.settle_reads()
            views = manager.views()
            answer = ContainerList(containers=views, count=len(views))
        elif isinstance(typed, CreateCommand):
            server = await manager.create(typed.params.spec)
            answer = ContainerStatus(id=server.id, state="installing")
        elif isinstance(typed, LogsCommand):
            return "success", await manager.logs(typed.params.server, typed.params.tail), None
        elif isinstance(typed, ExecInsideCommand):
            budget = typed.params.exec_timeout
            seconds = timeout if budget is None else budget.total_seconds()
            result = await manager.exec(typed.params.server, typed.params.command, seconds)
            return result.status, result.output, None
        elif isinstance(typed, CreateBackupCommand | BackupCommand):
            if self.backups is None:
                raise _Failed("backups are not available on this agent")
            line, answer = await run_backup_command(self.backups, typed)
            return "success", line, answer
        elif isinstance(typed, ConsoleCommand):
            return await console_command(manager, typed)
        elif isinstance(typed, DeleteCommand):
            volumes = typed.params.volumes
            await manager.delete(typed.params.server, volumes=volumes)
            answer = ServerRemoved(id=typed.params.server, volumes_removed=volumes)
        elif isinstance(typed, QuotaGetCommand | QuotaResizeCommand):
            view = await run_quota_command(manager.quotas, typed)
            return "success", summary(typed.params.server, view), view
        elif isinstance(typed, StopCommand):
            grace = typed.params.stop_timeout
            seconds = 10.0 if grace is None else grace.total_seconds()
            if typed.action == "reinstall":
                server = await manager.reinstall(typed.params.server, stop_timeout=seconds)
                answer = ContainerStatus(id=server.id, state="installing")
            else:
                answer = _status(await manager.power(typed.params.server, typed.action, seconds))
        else:
            assert isinstance(typed, PowerCommand)
            server_id = typed.params.server
            if typed.action == "status":
                await manager.settle_reads()
                manager.view(server_id)
                answer = _status(manager.get(server_id))
            else:
                answer = _status(await manager.power(server_id, typed.action, 10.0))
        return "success", _summary(answer), answer
