"""The two bases every wire model derives from.

``Payload`` is for bodies a peer of *another version* may send (registration, heartbeat, command
results, ``/update``): unknown fields are ignored, so a newer peer never breaks an older one.

``Request`` is for bodies an operator writes (container specs, commands, config files): an unknown
field is almost always a typo, so it is rejected with a message naming it.

Both are strict on types (``"8080"`` is not a port) and validate on assignment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Payload", "Request"]


class Payload(BaseModel):
    """A body sent by a peer program: unknown fields ignored, types strict."""

    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        validate_assignment=True,
        populate_by_name=True,
    )


class Request(BaseModel):
    """A body written by an operator: unknown fields rejected, types strict."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_assignment=True,
        populate_by_name=True,
    )
