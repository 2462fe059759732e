"""FastAPI dependencies, named as ``Annotated`` aliases so routes read like their contract.

``require_token`` (alias :data:`Authorized`) is the one place the API checks the bearer token;
other routers (remote sync's ``/remote/...``) use it the same way::

    router = APIRouter(dependencies=[Depends(require_token)])
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lightd_agent.commands import CommandLedger
from lightd_agent.config import AgentConfig
from lightd_agent.core import Agent
from lightd_agent.errors import Unavailable
from lightd_agent.events import EventBus
from lightd_agent.servers import ServerManager
from lightd_shared.routing import guard
from lightd_shared.tokens import tokens_equal

__all__ = [
    "AgentDep",
    "Authorized",
    "BusDep",
    "CommandsDep",
    "ConfigDep",
    "ManagerDep",
    "get_agent",
    "get_bus",
    "get_config",
    "get_manager",
    "lifecycle_allowed",
    "require_token",
]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <authorization.token>")


def get_agent(request: Request) -> Agent:
    """The one object on ``app.state`` (:class:`~lightd_agent.core.Agent`)."""
    agent: Agent = request.app.state.agent
    return agent


AgentDep = Annotated[Agent, Depends(get_agent)]


def get_config(agent: AgentDep) -> AgentConfig:
    return agent.config


def get_bus(agent: AgentDep) -> EventBus:
    return agent.bus


def get_manager(agent: AgentDep) -> ServerManager:
    return agent.manager


def get_commands(agent: AgentDep) -> CommandLedger:
    return agent.commands


ConfigDep = Annotated[AgentConfig, Depends(get_config)]
BusDep = Annotated[EventBus, Depends(get_bus)]
ManagerDep = Annotated[ServerManager, Depends(get_manager)]
CommandsDep = Annotated[CommandLedger, Depends(get_commands)]


@guard
def require_token(
    config: ConfigDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless ``Authorization: Bearer <authorization.token>`` (compared in constant time)."""
    auth = config.authorization
    if not auth.enabled:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token: send 'Authorization: Bearer <authorization.token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if auth.token is None or not tokens_equal(credentials.credentials, auth.token):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="invalid bearer token: use this agent's authorization.token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = Depends(require_token)


async def lifecycle_allowed(bus: BusDep) -> None:
    """503 with the gate's reason when new lifecycle actions are refused (e.g. outbox full).

    ``async``, so the gates are read on the event loop, between the loop's steps, where every
    outbox write is whole (a plain ``def`` runs in FastAPI's thread pool, concurrently).
    """
    reason = bus.refusal()
    if reason:
        raise Unavailable(f"lifecycle actions are refused right now: {reason}")


LifecycleAllowed = Depends(lifecycle_allowed)
