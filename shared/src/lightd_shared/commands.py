"""Commands (seed ``003``): what the coordinator dispatches to a node and what comes back.

Request::

    {"type": "exec", "action": "echo 'hello world'", "params": {"timeout": "30s"},
     "user": "developer"}

Result::

    {"id": "cmd_123456_node-1", "node_id": "node-1", "command": {...}, "status": "success",
     "output": "hello world", "duration": "100ms", "finished": "2026-01-13T18:17:00Z"}

A command is one of a discriminated union (:data:`Command`), chosen by ``type`` and, for
``container`` commands, by ``action``; each member has its own typed ``params``, so a wrong or
missing param is refused (``422``) naming the field (``params.server``, ``params.spec.image``)::

    exec                                 params: timeout
    container list                       params: timeout
    container create                     params: timeout, spec (a container spec)
    container start | kill | status      params: timeout, server
    container stop | restart | reinstall params: timeout, server, stop_timeout
    container delete                     params: timeout, server, volumes
    container logs                       params: timeout, server, tail
    container exec                       params: timeout, server, command, exec_timeout
    container backup.create | backup.list params: timeout, server, ignore
    container backup.get | backup.restore | backup.delete  params: timeout, server, backup
    container quota.get                  params: timeout, server
    container quota.resize               params: timeout, server, size (MB)
    container console                    params: timeout, server, command (one line)
    container schedules.list             params: timeout, server
    container schedules.create           params: timeout, server, schedule (a schedule spec)
    container schedules.update           params: timeout, server, schedule_id, changes
    container schedules.delete | .run    params: timeout, server, schedule_id
    container files.*                    see lightd_shared.files (FilesCommand)

A container command's result carries its answer typed in ``data`` (:data:`ContainerAnswer`: the
server list, a server's status, or a deletion); ``output`` is then one line for people (for
``logs`` and ``exec``: the text itself).

Over 400 lines on purpose: it is one idea, the command union (one typed member per
action, the discriminator and the typed answers); a feature's own params live in its module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    TypeAdapter,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from lightd_shared.backups import (
    BackupInfo,
    BackupList,
    BackupParams,
    BackupRemoved,
    CreateBackupParams,
    backup_answer_kind,
)
from lightd_shared.base import Payload, Request
from lightd_shared.console import ConsoleLine
from lightd_shared.containers import ContainerList, ContainerSpec, ContainerStatus
from lightd_shared.durations import Duration
from lightd_shared.files import FILES_ACTIONS, FilesAnswer, FilesCommand
from lightd_shared.quota import MAX_DISK, MIB, MIN_DISK, QuotaView
from lightd_shared.schedules import ScheduleList, SchedulePatch, ScheduleSpec, ScheduleView
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier

__all__ = [
    "COMMAND",
    "CONTAINER_ACTIONS",
    "FINAL_STATUSES",
    "SCHEDULE_ACTIONS",
    "BackupCommand",
    "Command",
    "CommandEcho",
    "CommandParams",
    "CommandResult",
    "CommandStatus",
    "CommandType",
    "ConsoleCommand",
    "ConsoleParams",
    "ContainerAction",
    "ContainerAnswer",
    "CreateBackupCommand",
    "CreateCommand",
    "CreateParams",
    "DeleteCommand",
    "DeleteParams",
    "ExecCommand",
    "ExecInsideCommand",
    "ExecInsideParams",
    "ListCommand",
    "LogsCommand",
    "LogsParams",
    "Params",
    "PowerCommand",
    "QuotaGetCommand",
    "QuotaResizeCommand",
    "QuotaResizeParams",
    "ScheduleAnswer",
    "ScheduleCreateCommand",
    "ScheduleCreateParams",
    "ScheduleListCommand",
    "ScheduleRefCommand",
    "ScheduleRefParams",
    "ScheduleUpdateCommand",
    "ScheduleUpdateParams",
    "ServerParams",
    "ServerRemoved",
    "StopCommand",
    "StoppingParams",
    "describe_command_errors",
]

CommandType = Literal["exec", "container"]
"""``exec``: a shell command on the node's host (off unless enabled); ``container``: agent API."""

CommandStatus = Literal["pending", "running", "success", "failed", "timeout"]
FINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "timeout"})

ContainerAction = Literal[
    "create",
    "start",
    "stop",
    "restart",
    "kill",
    "reinstall",
    "delete",
    "list",
    "status",
    "logs",
    "exec",
    "backup.create",
    "backup.list",
    "backup.get",
    "backup.restore",
    "backup.delete",
    "quota.get",
    "quota.resize",
    "console",
    "schedules.list",
    "schedules.create",
    "schedules.update",
    "schedules.delete",
    "schedules.run",
]
CONTAINER_ACTIONS: tuple[str, ...] = get_args(ContainerAction)
"""Every container action, in :data:`ContainerAction`'s order (one list, read from it)."""
SCHEDULE_ACTIONS: tuple[str, ...] = tuple(
    action for action in CONTAINER_ACTIONS if action.startswith("schedules.")
)


# -- params, one model per kind of command -----------------------------------------------------
class Params(Request):
    """``params`` of every command: ``timeout`` bounds the wait. Unknown keys are refused."""

    timeout: Duration | None = Field(default=None, description="How long to wait, e.g. '30s'")


class CreateParams(Params):
    spec: ContainerSpec = Field(description="The server to create (the agent's container spec)")


class ServerParams(Params):
    server: Identifier = Field(description="The server id")


class StoppingParams(ServerParams):
    stop_timeout: Duration | None = Field(
        default=None, description="How long the server may take to stop before the kill (10s)"
    )


class DeleteParams(ServerParams):
    volumes: bool = Field(default=False, description="Also remove the server's volumes")


class LogsParams(ServerParams):
    tail: int | None = Field(default=None, ge=0, le=100_000, description="The last N lines")


class ExecInsideParams(ServerParams):
    command: str | list[str] = Field(description="A string runs with /bin/sh -c, a list as is")
    exec_timeout: Duration | None = Field(
        default=None, description="How long it may run (default: params.timeout)"
    )

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("command must not be empty")
        return value


class ScheduleCreateParams(ServerParams):
    schedule: ScheduleSpec = Field(description="The schedule to create")


class ScheduleRefParams(ServerParams):
    schedule_id: Identifier = Field(description="The schedule's id")


class ScheduleUpdateParams(ScheduleRefParams):
    changes: SchedulePatch = Field(description="The fields to change (as PATCH)")


class CommandParams(BaseModel):
    """``params`` as echoed in a result from a peer: any keys, ``timeout`` read if present."""

    model_config = ConfigDict(extra="allow", strict=True, validate_assignment=True)

    timeout: Duration | None = Field(default=None, description="How long to wait, e.g. '30s'")


# -- the commands ---------------------------------------------------------------------------
MAX_COMMAND_USER = 255
"""The longest ``user`` a command may name (a result echoes it: :class:`CommandEcho`)."""
MAX_EXEC_ACTION = 65536
"""The longest shell command an ``exec`` may carry (echoed in its result as it is)."""


class _Command(Request):
    id: str | None = Field(default=None, description="Set by the coordinator when it dispatches")
    user: str | None = Field(default=None, max_length=MAX_COMMAND_USER)


class ExecCommand(_Command):
    """A shell command on the node's host: ``{"type": "exec", "action": "echo hi"}``."""

    type: Literal["exec"]
    action: str = Field(
        min_length=1, max_length=MAX_EXEC_ACTION, description="The shell command (/bin/sh -c)"
    )
    params: Params = Field(default_factory=Params)


class ListCommand(_Command):
    type: Literal["container"]
    action: Literal["list"]
    params: Params = Field(default_factory=Params)


class CreateCommand(_Command):
    type: Literal["container"]
    action: Literal["create"]
    params: CreateParams


class PowerCommand(_Command):
    type: Literal["container"]
    action: Literal["start", "kill", "status"]
    params: ServerParams


class StopCommand(_Command):
    type: Literal["container"]
    action: Literal["stop", "restart", "reinstall"]
    params: StoppingParams


class DeleteCommand(_Command):
    type: Literal["container"]
    action: Literal["delete"]
    params: DeleteParams


class LogsCommand(_Command):
    type: Literal["container"]
    action: Literal["logs"]
    params: LogsParams


class ExecInsideCommand(_Command):
    type: Literal["container"]
    action: Literal["exec"]
    params: ExecInsideParams


class CreateBackupCommand(_Command):
    """``backup.create`` (params.ignore adds patterns) and ``backup.list``."""

    type: Literal["container"]
    action: Literal["backup.create", "backup.list"]
    params: CreateBackupParams


class BackupCommand(_Command):
    """``backup.get``, ``backup.restore``, ``backup.delete`` of ``params.backup``."""

    type: Literal["container"]
    action: Literal["backup.get", "backup.restore", "backup.delete"]
    params: BackupParams


class QuotaResizeParams(ServerParams):
    size: int = Field(
        ge=MIN_DISK // MIB,
        le=MAX_DISK // MIB,
        description="The new disk limit (limits.disk) in MB (1 MB = 1024 * 1024 bytes)",
    )


class QuotaGetCommand(_Command):
    """``quota.get``: the server's disk quota (:class:`~lightd_shared.quota.QuotaView`)."""

    type: Literal["container"]
    action: Literal["quota.get"]
    params: ServerParams


class QuotaResizeCommand(_Command):
    """``quota.resize``: grow (or, stopped and when the data fits, shrink) the disk."""

    type: Literal["container"]
    action: Literal["quota.resize"]
    params: QuotaResizeParams


class ConsoleParams(ServerParams):
    command: ConsoleLine = Field(description="One line for the server's stdin")


class ConsoleCommand(_Command):
    type: Literal["container"]
    action: Literal["console"]
    params: ConsoleParams


class ScheduleListCommand(_Command):
    type: Literal["container"]
    action: Literal["schedules.list"]
    params: ServerParams


class ScheduleRefCommand(_Command):
    type: Literal["container"]
    action: Literal["schedules.delete", "schedules.run"]
    params: ScheduleRefParams


class ScheduleCreateCommand(_Command):
    type: Literal["container"]
    action: Literal["schedules.create"]
    params: ScheduleCreateParams


class ScheduleUpdateCommand(_Command):
    type: Literal["container"]
    action: Literal["schedules.update"]
    params: ScheduleUpdateParams


_MEMBER: dict[str, str] = {
    "list": "list",
    "create": "create",
    "start": "power",
    "kill": "power",
    "status": "power",
    "stop": "stopping",
    "restart": "stopping",
    "reinstall": "stopping",
    "delete": "delete",
    "logs": "logs",
    "exec": "exec_inside",
    "backup.create": "backup_create",
    "backup.list": "backup_create",
    "backup.get": "backup",
    "backup.restore": "backup",
    "backup.delete": "backup",
    "quota.get": "quota_get",
    "quota.resize": "quota_resize",
    "console": "console",
    "schedules.list": "schedule_list",
    "schedules.delete": "schedule_ref",
    "schedules.run": "schedule_ref",
    "schedules.create": "schedule_create",
    "schedules.update": "schedule_update",
}


def _command_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kind, action = value.get("type"), value.get("action")
    else:
        kind, action = getattr(value, "type", None), getattr(value, "action", None)
    if kind == "exec":
        return "exec"
    if kind == "container" and isinstance(action, str):
        if action.startswith("files."):
            return "files"
        return _MEMBER.get(action)
    return None


_UNKNOWN = (
    "unknown container action or command type: 'type' is 'exec' (a shell command) or "
    f"'container' with an 'action' of {', '.join((*CONTAINER_ACTIONS, *FILES_ACTIONS))}"
)

Command = Annotated[
    Annotated[ExecCommand, Tag("exec")]
    | Annotated[ListCommand, Tag("list")]
    | Annotated[CreateCommand, Tag("create")]
    | Annotated[PowerCommand, Tag("power")]
    | Annotated[StopCommand, Tag("stopping")]
    | Annotated[DeleteCommand, Tag("delete")]
    | Annotated[LogsCommand, Tag("logs")]
    | Annotated[ExecInsideCommand, Tag("exec_inside")]
    | Annotated[CreateBackupCommand, Tag("backup_create")]
    | Annotated[BackupCommand, Tag("backup")]
    | Annotated[QuotaGetCommand, Tag("quota_get")]
    | Annotated[QuotaResizeCommand, Tag("quota_resize")]
    | Annotated[ConsoleCommand, Tag("console")]
    | Annotated[ScheduleListCommand, Tag("schedule_list")]
    | Annotated[ScheduleRefCommand, Tag("schedule_ref")]
    | Annotated[ScheduleCreateCommand, Tag("schedule_create")]
    | Annotated[ScheduleUpdateCommand, Tag("schedule_update")]
    | Annotated[FilesCommand, Tag("files")],
    Discriminator(_command_kind, custom_error_type="command_kind", custom_error_message=_UNKNOWN),
]
"""A command as an operator sends it: one member per kind, unknown fields rejected."""

COMMAND: TypeAdapter[Command] = TypeAdapter(Command)
"""Validates a :data:`Command` outside a model (``COMMAND.validate_python(body)``)."""


def describe_command_errors(errors: list[Any]) -> str:
    """A command's validation errors in one line, each naming its field (``params.server: …``).

    The union member's tag, which pydantic puts first in each location, is left out.
    """
    tags = set(_MEMBER.values()) | {"exec", "files", *FILES_ACTIONS}
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        while loc and loc[0] in tags:  # a files.* command is a union inside the union
            loc = loc[1:]
        where = ".".join(loc)
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


class CommandEcho(Payload):
    """A command as echoed inside a result from a peer (unknown fields ignored, any params)."""

    id: str | None = Field(default=None, description="Set by the coordinator when it dispatches")
    type: CommandType
    action: str = Field(min_length=1, max_length=MAX_EXEC_ACTION)
    params: CommandParams = Field(default_factory=CommandParams)
    user: str | None = Field(default=None, max_length=MAX_COMMAND_USER)


# -- results -----------------------------------------------------------------------------------
class ServerRemoved(Payload):
    """A ``container delete`` answer: ``{"id", "state": "deleted", "volumes_removed"}``."""

    id: str
    state: Literal["deleted"] = "deleted"
    volumes_removed: bool = False


def _answer_kind(value: Any) -> str:
    if isinstance(value, FilesAnswer) or (isinstance(value, dict) and value.get("kind") == "files"):
        return "files"
    backup = backup_answer_kind(value)
    if backup is not None:
        return backup
    if isinstance(value, dict):
        if "containers" in value:
            return "list"
        if "size_mb" in value:
            return "quota"
        return "removed" if value.get("state") == "deleted" else "status"
    if isinstance(value, ContainerList):
        return "list"
    if isinstance(value, QuotaView):
        return "quota"
    return "removed" if isinstance(value, ServerRemoved) else "status"


class _OverlappingMembers:
    """Documents the answer union as ``anyOf``, not ``oneOf``: in JSON Schema its members
    overlap (a ``ContainerList`` requires only ``count``, a backup's metadata has an ``id`` and a
    ``state`` like a server's status), so a ``oneOf`` would refuse every valid answer that fits
    two of them. Validation in Python still picks exactly one member (the discriminator)."""

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
            schema.pop("discriminator", None)
        return schema


ContainerAnswer = Annotated[
    Annotated[ContainerList, Tag("list")]
    | Annotated[ServerRemoved, Tag("removed")]
    | Annotated[ContainerStatus, Tag("status")]
    | Annotated[BackupList, Tag("backup_list")]
    | Annotated[BackupRemoved, Tag("backup_removed")]
    | Annotated[BackupInfo, Tag("backup")]
    | Annotated[QuotaView, Tag("quota")]
    | Annotated[FilesAnswer, Tag("files")],
    Discriminator(_answer_kind),
    _OverlappingMembers(),
]
"""A container command's typed answer: the list, a server's status (``create``/``reinstall``:
``installing``), a deletion, or a disk quota (``quota.get``/``quota.resize``)."""


ScheduleAnswer = ScheduleList | ScheduleView
"""A ``schedules.*`` command's typed answer: the list, or one schedule. Kept beside
:data:`ContainerAnswer`, not in it: an empty schedule list would also read as a server list."""


class CommandResult(Payload):
    """A command's result, as the node reports it and the coordinator stores and returns it."""

    id: str = Field(min_length=1)
    node_id: str = Field(min_length=1)
    command: CommandEcho | None = None
    status: CommandStatus
    output: str = ""
    data: ContainerAnswer | ScheduleAnswer | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # an exec result keeps the seed's fields
        description="A container command's answer, typed (list, status, deletion); else absent",
    )
    duration: Duration | None = None
    finished: Timestamp | None = None
