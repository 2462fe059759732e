"""Errors the agent answers with, each carrying its HTTP status and an operator-readable message.

::

    AgentError (500)
    ├── BadRequest        (422)  a value the schema allowed but the host cannot use
    ├── PolicyRefused     (403)  an option the agent's policy forbids (names the config switch)
    ├── NotFound          (404)  an unknown server id
    ├── Conflict          (409)  duplicate id, port in use, wrong state for the action
    ├── PayloadTooLarge   (413)  a body over server.max_body_size
    ├── Unavailable       (503)  Docker unreachable, or lifecycle actions refused by a gate
    └── DockerTimeout     (504)  a Docker call that did not answer in docker.call_timeout
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "BadRequest",
    "Conflict",
    "DockerTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PolicyRefused",
    "Unavailable",
]


class AgentError(Exception):
    """Base: ``status`` is the HTTP status, ``message`` says what happened and what to do.

    ``server`` names the server the refused request was for when the URL does not (a create
    carries its id in the body); the API's log line of a 503/504 shows it.
    """

    status = 500

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.server = server


class BadRequest(AgentError):
    status = 422


class PolicyRefused(AgentError):
    status = 403


class NotFound(AgentError):
    status = 404


class Conflict(AgentError):
    status = 409


class PayloadTooLarge(AgentError):
    status = 413


class Unavailable(AgentError):
    status = 503


class DockerTimeout(AgentError):
    status = 504
