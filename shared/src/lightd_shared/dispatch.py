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

import base64
import binascii
import hashlib
import hmac
import json
import time

from pydantic import Field, ValidationError

from lightd_shared.base import Payload, Request
from lightd_shared.commands import Command, CommandEcho, CommandResult
from lightd_shared.types import Labels

__all__ = [
    "AGENT_COMMANDS_PATH",
    "DISPATCH_ISSUER",
    "DISPATCH_SUBJECT",
    "IDEMPOTENCY_HEADER",
    "AgentCommand",
    "DispatchClaims",
    "DispatchTokenError",
    "FanOutRequest",
    "FanOutResults",
    "verify_dispatch_token",
]

AGENT_COMMANDS_PATH = "/commands"
"""Where an agent accepts commands, relative to ``http://{address}:{port}``."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Sent by clients to the coordinator, and by the coordinator to agents (value: the command id)."""

DISPATCH_ISSUER = "lightd-coordinator"
DISPATCH_SUBJECT = "coordinator"


class AgentCommand(CommandEcho):
    """The body of ``POST /commands`` on an agent: the operator's command plus its ids."""

    id: str = Field(min_length=1, description="The coordinator's command id; unique per command")
    node_id: str = Field(min_length=1, description="The node the command is meant for")


class DispatchClaims(Payload):
    """The claims of the bearer JWT the coordinator sends with a command (HS256).

    An agent accepts the command only if the signature verifies with its dispatch secret using
    HS256 (no other algorithm), ``aud`` is its own node id, ``sub`` is ``"coordinator"``,
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


class DispatchTokenError(ValueError):
    """A command's bearer token does not authorise it; the message says why (never the token)."""


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DispatchTokenError("malformed token") from exc


def verify_dispatch_token(
    authorization: str | None,
    secret: str,
    *,
    node_id: str,
    command_id: str,
    leeway: float = 5.0,
    now: float | None = None,
) -> DispatchClaims:
    """Check the ``Authorization`` header of a ``POST /commands`` as an agent must.

    HS256 only (``alg`` is checked before anything else, so ``none`` never passes), signature
    compared in constant time, ``aud`` = this node, ``sub``/``iss`` = the coordinator, ``exp`` in
    the future (``leeway`` seconds of clock skew), ``jti`` = the command id. Standard library only,
    so an agent needs no JWT package.
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise DispatchTokenError("missing bearer token")
    parts = authorization.removeprefix("Bearer ").strip().split(".")
    if len(parts) != 3:
        raise DispatchTokenError("malformed token")
    try:
        header = json.loads(_b64decode(parts[0]))
    except ValueError as exc:
        raise DispatchTokenError("malformed token") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise DispatchTokenError("token algorithm must be HS256")
    expected = hmac.new(
        secret.encode("utf-8"), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, _b64decode(parts[2])):
        raise DispatchTokenError("token signature is invalid")
    try:
        claims = DispatchClaims.model_validate_json(_b64decode(parts[1]))
    except ValidationError as exc:
        raise DispatchTokenError("token claims are incomplete") from exc
    moment = time.time() if now is None else now
    if claims.exp + leeway <= moment:
        raise DispatchTokenError("token has expired")
    if claims.aud != node_id:
        raise DispatchTokenError("token is for another node")
    if claims.sub != DISPATCH_SUBJECT or claims.iss != DISPATCH_ISSUER:
        raise DispatchTokenError("token was not issued by the coordinator")
    if claims.jti != command_id:
        raise DispatchTokenError("token is for another command")
    return claims
