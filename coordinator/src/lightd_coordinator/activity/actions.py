"""Which API calls the activity log records, and the name of what each one does.

Every ``POST``/``PUT``/``PATCH``/``DELETE`` below ``/api/`` is recorded once the caller is known,
except the calls in :data:`SKIPPED`, which agents make all the time and which would flood it:

- heartbeats and stats pushes (every few seconds per node);
- an agent's relayed events and remote updates (``/nodes/{id}/events``,
  ``/remote/{id}/update``): each is already a ``/ws`` event;
- an agent's report of a command's result: the command's own entry records how it ended.

A route not in :data:`ACTIONS` (one added later) is still recorded, named
``"METHOD /its/{template}"``.
"""

from __future__ import annotations

__all__ = ["ACTIONS", "MUTATING", "SKIPPED", "action_of"]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_NODE = "/api/v1/nodes/{node_id}"
_SERVER = f"{_NODE}/containers/{{server}}"

SKIPPED = frozenset(
    {
        ("POST", f"{_NODE}/heartbeat"),
        ("POST", f"{_NODE}/stats"),
        ("POST", f"{_NODE}/events"),
        ("POST", "/api/v1/remote/{node_id}/update"),
        ("POST", "/api/v1/commands/{command_id}/result"),
    }
)

ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/token"): "token.issue",
    ("POST", "/api/v1/nodes"): "node.register",
    ("PUT", _NODE): "node.update",
    ("DELETE", _NODE): "node.unregister",
    ("POST", f"{_NODE}/commands"): "command.dispatch",
    ("POST", "/api/v1/commands"): "command.fanout",
    ("POST", f"{_NODE}/containers"): "container.create",
    ("DELETE", _SERVER): "container.delete",
    ("POST", f"{_SERVER}/exec"): "container.exec",
    **{
        ("POST", f"{_SERVER}/{power}"): f"container.{power}"
        for power in ("start", "stop", "restart", "kill", "reinstall")
    },
    ("POST", "/api/v1/remote/{node_id}/config"): "remote.config",
    **{
        ("POST", f"{_SERVER}/files/{route}"): f"files.{name}"
        for route, name in (
            ("write", "write"),
            ("create-folder", "mkdir"),
            ("copy", "copy"),
            ("rename", "rename"),
            ("delete", "delete"),
            ("chmod", "chmod"),
            ("compress", "compress"),
            ("decompress", "decompress"),
        )
    },
    ("PUT", f"{_SERVER}/files/upload"): "files.upload",
}


def action_of(method: str, route: str) -> str | None:
    """The action a call is recorded as; ``None``: not recorded."""
    if method not in MUTATING or not route.startswith("/api/") or (method, route) in SKIPPED:
        return None
    return ACTIONS.get((method, route), f"{method} {route}")
