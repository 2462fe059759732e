"""Command dispatch between the coordinator and an agent, and the operator's fan-out request.

The coordinator delivers a command to a node with::

    POST http://{address}:{port}/commands
    Authorization: Bearer <JWT>          # see DispatchClaims
    Idempotency-Key: <command id>        # the same id as in the body
    Content-Type: application/json

    {"id": "cmd_..._node-1", "node_id": "node-1", "type": "exec", "action": "echo hi",
     "params": {"timeout": "30s"}, "user": "developer"}

The agent answers either

- ``200`` with a :class:`~lightd_shared.commands.CommandResult` (the command ran to its end), or
- ``202`` with a ``CommandResult`` whose status is ``pending``/``running``: it accepted the command
  and reports the final result later with ``POST /api/v1/commands/{id}/result``.

Any other answer is a refusal: the coordinator records the command as ``failed``. An agent that
receives the same ``id`` twice must not run it twice (answer with the first result).
"""

from __future__ import annotations

from pydantic import Field

from lightd_shared.base import Payload, Request
from lightd_shared.commands import Command, CommandEcho, CommandResult
from lightd_shared.types import Labels

__all__ = [
    "AGENT_COMMANDS_PATH",
    "DISPATCH_ISSUER",
    "DISPATCH_KEY_MIN_LENGTH",
    "DISPATCH_SUBJECT",
    "IDEMPOTENCY_HEADER",
    "NEXT_HEARTBEAT_HEADER",
    "NODE_PROOF_AUDIENCE",
    "NODE_PROOF_HEADER",
    "NODE_PROOF_ISSUER",
    "AgentCommand",
    "DispatchClaims",
    "FanOutRequest",
    "FanOutResults",
]

AGENT_COMMANDS_PATH = "/commands"
"""Where an agent accepts commands, relative to ``http://{address}:{port}``."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Sent by clients to the coordinator, and by the coordinator to agents (value: the command id)."""

DISPATCH_ISSUER = "lightd-coordinator"
DISPATCH_SUBJECT = "coordinator"
DISPATCH_KEY_MIN_LENGTH = 32
"""A node's dispatch key (sent at registration) has at least this many characters."""

NEXT_HEARTBEAT_HEADER = "X-Lightd-Next-Heartbeat"
"""In the coordinator's heartbeat answer when the fleet is large: seconds until this node's next
heartbeat (``registry.max_heartbeat_rate``). An agent waits the longer of it and its own
``coordinator.heartbeat_interval``; the coordinator stretches the node timeout to match."""

NODE_PROOF_HEADER = "X-Lightd-Node-Proof"
"""Sent by an agent to the coordinator on registration and heartbeat: proof that it holds the
node's dispatch key. A HS256 JWT signed with that key, ``iss`` = :data:`NODE_PROOF_ISSUER`,
``sub`` = the node id, ``aud`` = :data:`NODE_PROOF_AUDIENCE`, with ``iat`` and ``exp``. Once a node
id is enrolled with a key, only calls carrying a valid proof (or an operator's token) may speak
for it: the shared ``auth.agent_token`` enrols new nodes but cannot take over enrolled ones."""
NODE_PROOF_ISSUER = "lightd-agent"
NODE_PROOF_AUDIENCE = "lightd-coordinator/node-proof"


class AgentCommand(CommandEcho):
    """The body of ``POST /commands`` on an agent: the operator's command plus its ids."""

    id: str = Field(min_length=1, description="The coordinator's command id; unique per command")
    node_id: str = Field(min_length=1, description="The node the command is meant for")


class DispatchClaims(Payload):
    """The claims of the bearer JWT the coordinator sends with a command (HS256).

    The token is signed with the *node's own* dispatch key, which the agent generated at start
    and sent with its registration (``NodeRegistration.dispatch_key``); a compromised agent
    therefore knows only its own key and can mint neither coordinator API tokens nor commands
    for other nodes. An agent accepts the command only if the signature verifies with its key
    using HS256 (no other algorithm), ``aud`` is its own node id, ``sub`` is ``"coordinator"``,
    ``exp`` is in the future and ``jti`` equals the body's ``id``.
    """

    iss: str = DISPATCH_ISSUER
    sub: str = DISPATCH_SUBJECT
    aud: str = Field(min_length=1, description="The node id the token is for")
    iat: int
    exp: int
    jti: str = Field(min_length=1, description="The command id the token authorises")


class FanOutRequest(Request):
    """``POST /api/v1/commands``: run one command on every active node matching ``selector``.

    ``selector`` is a label selector: a node matches when it carries every ``key: value`` pair
    (an empty selector matches every active node).
    """

    selector: Labels = Field(default_factory=dict)
    command: Command


class FanOutResults(Payload):
    """The answer to a fan-out: one result per matching node, in node-id order."""

    results: list[CommandResult] = Field(default_factory=list)
    count: int = Field(ge=0)
