"""The two bases every wire model derives from.

``Payload`` is for bodies a peer of *another version* may send (registration, heartbeat, command
results, ``/update``): unknown fields are ignored, so a newer peer never breaks an older one.

``Request`` is for bodies an operator writes (container specs, commands, config files): an unknown
field is almost always a typo, so it is rejected with a message naming it.

Both are strict on types (``"8080"`` is not a port) and validate on assignment, and both refuse
a body that holds unencodable text (a lone surrogate), is nested more than
:data:`~lightd_shared.wire.MAX_DEPTH` levels deep or holds more than
:data:`~lightd_shared.wire.MAX_VALUES` values (:func:`~lightd_shared.wire.check_wire_value`),
before any field is read: such a value would break every later answer that includes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from lightd_shared.wire import check_wire_value


class _WireChecked(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _fit_for_the_wire(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_wire_value(data)
        return data


class Payload(_WireChecked):
    """A body sent by a peer program: unknown fields ignored, types strict."""

    model_config = ConfigDict(
        extra="ignore",
        strict=True,
        validate_assignment=True,
        populate_by_name=True,
    )


class Request(_WireChecked):
    """A body written by an operator: unknown fields rejected, types strict."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_assignment=True,
        populate_by_name=True,
    )
