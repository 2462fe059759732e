"""Node registry bodies (seed ``003``): registration, update, record, list and status."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from lightd_shared.base import Payload, Request
from lightd_shared.dispatch import DISPATCH_KEY_MIN_LENGTH
from lightd_shared.durations import Duration
from lightd_shared.services import Service
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import Identifier, Labels, Port

__all__ = [
    "Heartbeat",
    "NodeList",
    "NodeRecord",
    "NodeRegistration",
    "NodeState",
    "NodeStatusView",
    "NodeUpdate",
]

NodeState = Literal["active", "inactive"]
"""``active`` while the node is seen within ``registry.node_timeout``; ``inactive`` after."""


class NodeRegistration(Payload):
    """``POST /api/v1/nodes``: a node announces itself (registering an existing id updates it)."""

    id: Identifier
    name: str = Field(default="", description="Human name; defaults to the id")
    provider: str = Field(default="docker", min_length=1)
    status: NodeState = "active"
    address: str = Field(min_length=1, description="Host name or IP the coordinator can reach")
    port: Port
    labels: Labels = Field(default_factory=dict)
    capabilities: dict[str, bool] = Field(default_factory=dict)
    health_url: str | None = Field(
        default=None, description="If set, the coordinator probes it every health_check_interval"
    )
    version: str | None = None
    dispatch_key: str | None = Field(
        default=None,
        min_length=DISPATCH_KEY_MIN_LENGTH,
        max_length=512,
        exclude=True,
        repr=False,
        description=(
            "lightd: the secret this node verifies command JWTs with (a fresh random value per "
            "agent process). Write-only: never part of any answer or stored record."
        ),
    )

    @model_validator(mode="after")
    def _name_defaults_to_id(self) -> Self:
        if not self.name:
            # object.__setattr__ keeps the field out of model_fields_set (exclude_unset round-trips)
            object.__setattr__(self, "name", self.id)
        return self


class NodeRecord(NodeRegistration):
    """A node as the registry keeps it: the registration plus server-kept times."""

    created_at: Timestamp
    last_seen: Timestamp


class NodeUpdate(Request):
    """``PUT /api/v1/nodes/{id}``: a partial update; only the fields given change."""

    name: str | None = Field(default=None, min_length=1)
    provider: str | None = Field(default=None, min_length=1)
    status: NodeState | None = None
    address: str | None = Field(default=None, min_length=1)
    port: Port | None = None
    labels: Labels | None = None
    capabilities: dict[str, bool] | None = None
    health_url: str | None = None

    def changes(self) -> dict[str, object]:
        """The fields the caller set, without explicit nulls."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class NodeList(Payload):
    """``GET /api/v1/nodes``: ``{"nodes": [...], "count": N}`` (``count`` is the total)."""

    nodes: list[NodeRecord] = Field(default_factory=list)
    count: int = Field(ge=0)


class NodeStatusView(Payload):
    """``GET /api/v1/nodes/{id}/status``."""

    node_id: str
    status: NodeState
    last_seen: Timestamp
    uptime: Duration = timedelta(0)


class Heartbeat(Payload):
    """``POST /api/v1/nodes/{id}/heartbeat``: I am alive, and (optionally) here is what I run."""

    status: NodeState | None = None
    services: list[Service] | None = None
