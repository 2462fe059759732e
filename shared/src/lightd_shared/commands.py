"""Commands (seed ``003``): what the coordinator dispatches to a node and what comes back.

Request::

    {"type": "exec", "action": "echo 'hello world'", "params": {"timeout": "30s"},
     "user": "developer"}

Result::

    {"id": "cmd_123456_node-1", "node_id": "node-1", "command": {...}, "status": "success",
     "output": "hello world", "duration": "100ms", "finished": "2026-01-13T18:17:00Z"}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lightd_shared.base import Payload, Request
from lightd_shared.durations import Duration
from lightd_shared.timestamps import Timestamp

__all__ = [
    "FINAL_STATUSES",
    "Command",
    "CommandEcho",
    "CommandParams",
    "CommandResult",
    "CommandStatus",
    "CommandType",
]

CommandType = Literal["exec", "container"]
"""``exec``: a shell command on the node's host (off unless enabled); ``container``: agent API."""

CommandStatus = Literal["pending", "running", "success", "failed", "timeout"]
FINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "timeout"})


class CommandParams(BaseModel):
    """``params``: ``timeout`` bounds the wait; other keys depend on the command type."""

    model_config = ConfigDict(extra="allow", strict=True, validate_assignment=True)

    timeout: Duration | None = Field(default=None, description="How long to wait, e.g. '30s'")


class _CommandFields(BaseModel):
    id: str | None = Field(default=None, description="Set by the coordinator when it dispatches")
    type: CommandType
    action: str = Field(min_length=1, max_length=65536)
    params: CommandParams = Field(default_factory=CommandParams)
    user: str | None = Field(default=None, max_length=255)


class Command(_CommandFields, Request):
    """A command as an operator sends it (unknown fields rejected)."""


class CommandEcho(_CommandFields, Payload):
    """A command as echoed inside a result from a peer (unknown fields ignored)."""


class CommandResult(Payload):
    """A command's result, as the node reports it and the coordinator stores and returns it."""

    id: str = Field(min_length=1)
    node_id: str = Field(min_length=1)
    command: CommandEcho | None = None
    status: CommandStatus
    output: str = ""
    duration: Duration | None = None
    finished: Timestamp | None = None
