"""``POST /commands``: a command from the coordinator (contract: ``lightd_shared.dispatch``).

Not opened by the agent's API token: only a dispatch JWT signed with this node's dispatch key
(see :mod:`lightd_agent.security`) for this node and this command id. The token is checked
before the body is read, so nobody without one learns anything from this route.

The answer is always ``200`` with the final :class:`~lightd_shared.commands.CommandResult`; a
repeated command id gets the first run's result and does not run again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status

from lightd_agent.api.deps import ConfigDep, get_agent
from lightd_agent.commands import CommandLedger
from lightd_agent.security import DispatchTokenError, verify_dispatch_token
from lightd_shared.commands import CommandResult
from lightd_shared.dispatch import AGENT_COMMANDS_PATH, AgentCommand, DispatchClaims
from lightd_shared.routing import GuardFirstRoute, guard

router = APIRouter(tags=["commands"], route_class=GuardFirstRoute)


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=f"command refused: {reason}; only the coordinator this agent registered with "
        "can send commands",
        headers={"WWW-Authenticate": "Bearer"},
    )


@guard
def dispatch_claims(
    request: Request,
    config: ConfigDep,
    authorization: Annotated[str | None, Header()] = None,
) -> DispatchClaims:
    """The verified claims of the coordinator's token (the command id is checked in the route)."""
    key: str | None = get_agent(request).dispatch_key
    if key is None or not config.coordinator.enabled:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="this agent takes no commands: coordinator.enabled is false in its config",
        )
    try:
        return verify_dispatch_token(authorization, key, node_id=config.node.id, command_id=None)
    except DispatchTokenError as exc:
        raise _unauthorized(str(exc)) from None


@router.post(AGENT_COMMANDS_PATH, response_model=CommandResult, summary="Run a command")
async def run_command(
    command: AgentCommand,
    request: Request,
    config: ConfigDep,
    claims: Annotated[DispatchClaims, Depends(dispatch_claims)],
) -> CommandResult:
    """Run (once) the command the coordinator signed for this node and answer its result."""
    if claims.jti != command.id:
        raise _unauthorized("token is for another command")
    if command.node_id != config.node.id:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"command is for node {command.node_id!r}; this is node {config.node.id!r}",
        )
    ledger: CommandLedger = get_agent(request).commands
    result, _ = await ledger.submit(command, token_expires=claims.exp)
    return result
