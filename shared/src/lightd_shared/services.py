"""Service discovery (seed ``003``): what a node runs and where it can be reached."""

from __future__ import annotations

from pydantic import Field

from lightd_shared.base import Payload
from lightd_shared.types import Port

__all__ = ["Service", "ServiceListing"]


class Service(Payload):
    """``{"id", "name", "type", "status", "port", "endpoint"}`` as a node reports it."""

    id: str = Field(min_length=1, max_length=255)
    name: str = Field(default="", max_length=255)
    type: str = Field(default="tcp", max_length=64)
    status: str = Field(default="running", max_length=64)
    port: Port | None = None
    endpoint: str | None = Field(default=None, max_length=2048)


class ServiceListing(Payload):
    """``GET /api/v1/services``: services per node id, and how many nodes are registered.

    As in the seed's example (``"nodes": 3`` beside one node's services): ``services`` lists the
    nodes that reported services in a heartbeat, ``nodes`` counts every registered node.
    """

    services: dict[str, list[Service]] = Field(default_factory=dict)
    nodes: int = Field(ge=0, description="Registered nodes, whether or not they reported services")
