"""Which lifecycle event becomes which ``/update`` body (the seed's table, to the letter).

=================  =================================================================
Lifecycle event    Body sent to ``POST {url}/update``
=================  =================================================================
Started            ``{"event":"update","server":ID,"status":"installing"}``
CreatingContainer  ``{"event":"update","server":ID,"status":"installing"}``
ReinstallStarted   ``{"event":"update","server":ID,"status":"installing"}``
Ready              ``{"event":"update","server":ID,"status":"ready"}``
Error              ``{"event":"update","server":ID,"error":E,"data":DETAILS}``
backup_failed      ``{"event":"update","server":ID,"error":"failed","data":"backup failed: ..."}``
restore_failed     ``{"event":"update","server":ID,"error":"failed","data":"restore failed: ..."}``
Running/Stopped/   ``"status":"running"|"stopped"|"crashed"``, only with
Crashed            ``remote.events = "all"`` (the seed has no such statuses)
Deleted            never sent
=================  =================================================================

Bodies are built through the shared models so they can never drift from the seed's shape.
"""

from __future__ import annotations

from typing import Any, Literal

from lightd_agent.events import LifecycleEvent
from lightd_shared.remote import (
    MAX_ERROR_DATA_LENGTH,
    MAX_ERROR_LENGTH,
    ErrorUpdate,
    RemoteStatus,
    StatusUpdate,
)

__all__ = ["update_body"]

_SEED_STATUS: dict[str, RemoteStatus] = {
    "Started": "installing",
    "CreatingContainer": "installing",
    "ReinstallStarted": "installing",
    "Ready": "ready",
}
_ERROR_KINDS = frozenset({"Error", "backup_failed", "restore_failed"})
"""Kinds sent as the seed's error update (a backup's ``data`` is ``backup failed: ...``)."""
_RUNTIME_STATUS: dict[str, RemoteStatus] = {
    "Running": "running",
    "Stopped": "stopped",
    "Crashed": "crashed",
}


def update_body(event: LifecycleEvent, events: Literal["seed", "all"]) -> dict[str, Any] | None:
    """The body to send for ``event``, or ``None`` when this event is not sent."""
    if event.kind in _ERROR_KINDS:
        # cut to the shared bounds: a remote refuses longer ones, and a long Docker message
        # must not stop the update from being sent at all
        return ErrorUpdate(
            server=event.server,
            error=(event.error or "failed")[:MAX_ERROR_LENGTH],
            data=(event.data or "")[:MAX_ERROR_DATA_LENGTH],
        ).model_dump(mode="json")
    status = _SEED_STATUS.get(event.kind)
    if status is None and events == "all":
        status = _RUNTIME_STATUS.get(event.kind)
    if status is None:
        return None
    return StatusUpdate(server=event.server, status=status).model_dump(mode="json")
