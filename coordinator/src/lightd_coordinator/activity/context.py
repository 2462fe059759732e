"""What the activity log learns about a request while it runs: its id and who is calling.

:class:`~lightd_coordinator.activity.middleware.ActivityMiddleware` opens a :class:`Note` for
each request it may record and puts it in :data:`current_note` (a context variable, so the
dispatcher's task of a command started by the request sees it too); the auth dependencies
fill in the caller (:func:`note_caller`), the dispatcher a command's own ``user`` and server,
a route what its body names (:func:`note_target`).
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = [
    "REQUEST_ID_HEADER",
    "Note",
    "current_note",
    "new_request_id",
    "note_caller",
    "note_target",
]

REQUEST_ID_HEADER = "X-Request-ID"
"""A caller's own request id (1-64 of ``A-Za-z0-9._-``) is kept; else the coordinator makes
one. Either way the answer carries it, and so does every entry the request leads to."""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_request_id(offered: str | None = None) -> str:
    """``offered`` when it is a fit request id, else a fresh random one."""
    if offered is not None and _REQUEST_ID.match(offered):
        return offered
    return secrets.token_hex(8)


@dataclass
class Note:
    request_id: str
    subject: str | None = None
    """The token's subject, once the auth dependency has checked it (``None``: unknown)."""
    users: list[str] = field(default_factory=list)
    """The ``user`` fields of the commands the request dispatched."""
    node: str | None = None
    """The node the request is about when the path does not name it (a registration)."""
    server: str | None = None
    """The server, when the path does not name it (a create: the spec's id)."""

    @property
    def user(self) -> str | None:
        """Who the request acted for: the commands' user when they name one, else the subject."""
        named = sorted(set(self.users))
        return ",".join(named)[:255] if named else self.subject


current_note: ContextVar[Note | None] = ContextVar("lightd_activity_note", default=None)


def note_target(*, node: str | None = None, server: str | None = None) -> None:
    """The node (or server) a request is about, read from its body by the route."""
    note = current_note.get()
    if note is not None:
        note.node = node if node is not None else note.node
        note.server = server if server is not None else note.server


def note_caller(subject: str) -> None:
    """The auth dependency checked the caller: remember its subject for the entry."""
    note = current_note.get()
    if note is not None:
        note.subject = subject
