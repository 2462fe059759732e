"""The agent's ``/remote/...`` API: the seed's two local routes plus the operator's levers.

Seed routes: ``GET /remote/config`` (token masked) and ``POST /remote/config/reload`` (which,
unlike the seed's note, applies the new settings to the running agent). Added: config pull and
push, the sync status, and the dead letters (list, replay, discard).

The router takes its auth dependency as a required argument, so it cannot be mounted without
one. :class:`RemoteSync` is read from the agent's ``remote_sync`` (``app.state.agent``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status

from lightd_agent import __version__
from lightd_agent.api.deps import get_agent
from lightd_agent.remote.sync import RemoteCallFailed, RemoteDisabled, RemoteSync
from lightd_shared.remote import (
    ConfigDocument,
    ConfigPull,
    DeadLetterList,
    MessageResponse,
    RemoteConfigRemote,
    RemoteConfigView,
    RemoteSyncHealth,
)
from lightd_shared.routing import GuardFirstRoute

__all__ = ["create_router", "get_remote_sync"]


def get_remote_sync(request: Request) -> RemoteSync:
    sync: RemoteSync | None = get_agent(request).remote_sync
    if sync is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "remote sync is not running")
    return sync


SyncDep = Annotated[RemoteSync, Depends(get_remote_sync)]
DeadLetterId = Annotated[
    int,
    Path(ge=1, le=2**63 - 1, description="A dead letter's id (GET /remote/dead-letters)"),
]
"""Bounded to SQLite's integers: a larger id was a 500 (an overflow), now a 422."""


def _config_view(sync: RemoteSync) -> RemoteConfigView:
    remote = sync.describe()
    return RemoteConfigView(
        version=__version__,
        server=sync.server_info(),
        remote=RemoteConfigRemote(
            enabled=remote["enabled"], url=remote["url"], token=remote["token"]
        ),
    )


def create_router(*, dependencies: Sequence[Any]) -> APIRouter:
    """The ``/remote`` router, every route guarded by ``dependencies`` (the agent's auth)."""
    router = APIRouter(
        prefix="/remote",
        tags=["remote"],
        dependencies=list(dependencies),
        route_class=GuardFirstRoute,
    )

    @router.get("/config", response_model=RemoteConfigView)
    async def get_config(sync: SyncDep) -> RemoteConfigView:
        """The running remote settings (token masked)."""
        return _config_view(sync)

    @router.post("/config/reload", response_model=MessageResponse)
    async def reload_config(sync: SyncDep) -> MessageResponse:
        """Re-read config.json and apply its ``remote`` block now, without a restart."""
        try:
            await sync.reload()
        except RuntimeError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except Exception as exc:
            # A bad file changes nothing: the running settings stay as they were.
            raise HTTPException(
                422,
                f"configuration not reloaded, the running settings are unchanged: {exc}",
            ) from exc
        return MessageResponse(message="Configuration reloaded successfully")

    @router.post("/config/pull", response_model=ConfigPull)
    async def pull_config(sync: SyncDep, apply: bool = False) -> ConfigPull:
        """``GET {url}/config`` from the remote, now; ``?apply=true`` creates missing servers."""
        try:
            return await sync.pull_config(apply=apply)
        except RemoteDisabled as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except RemoteCallFailed as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc

    @router.post("/config/push", response_model=ConfigDocument)
    async def push_config(sync: SyncDep) -> ConfigDocument:
        """``POST {url}/config`` with this agent's configuration, now; answers what was sent."""
        try:
            return await sync.push_config()
        except RemoteDisabled as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except RemoteCallFailed as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc

    @router.get("/status", response_model=RemoteSyncHealth)
    async def sync_status(sync: SyncDep) -> RemoteSyncHealth:
        """Remote health, outbox depth, oldest undelivered age, dead letters."""
        return sync.snapshot()

    @router.get("/dead-letters", response_model=DeadLetterList)
    async def list_dead_letters(sync: SyncDep) -> DeadLetterList:
        """Updates the remote refused for good (4xx other than 401/403/408/429)."""
        return DeadLetterList(dead_letters=sync.dead_letters())

    @router.post("/dead-letters/{dead_letter_id}/replay", response_model=MessageResponse)
    async def replay_dead_letter(dead_letter_id: DeadLetterId, sync: SyncDep) -> MessageResponse:
        """Queue a dead letter again, with its original sequence and Idempotency-Key."""
        if not sync.replay(dead_letter_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {dead_letter_id}")
        return MessageResponse(message=f"dead letter {dead_letter_id} queued for delivery")

    @router.delete("/dead-letters/{dead_letter_id}", response_model=MessageResponse)
    async def discard_dead_letter(dead_letter_id: DeadLetterId, sync: SyncDep) -> MessageResponse:
        """Forget a dead letter for good."""
        if not sync.discard(dead_letter_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {dead_letter_id}")
        return MessageResponse(message=f"dead letter {dead_letter_id} discarded")

    return router
