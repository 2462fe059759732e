"""Node registry bodies (seed ``003``): registration, update, record, list and status."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from lightd_shared.base import Payload, Request
from lightd_shared.dispatch import DISPATCH_KEY_MIN_LENGTH
from lightd_shared.durations import Duration
from lightd_shared.services import Service
from lightd_shared.timestamps import Timestamp
from lightd_shared.types import MAX_LABELS, Identifier, LabelKey, Labels, Port, ShortText

__all__ = [
    "Address",
    "HealthUrl",
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

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED_NUMBERS = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or IP literal (``None``: it is one)."""
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in literal:
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return f"{host[:80]!r} is not a valid IPv6 address"
        return None
    if literal != host:
        return f"{host[:80]!r}: only IPv6 addresses go in brackets"
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host[:80]!r} is not a valid IPv4 address"
        return None
    if not _HOSTNAME.fullmatch(host):
        return (
            f"{host[:80]!r} is not a host name (letters, digits, '-', '_' in dot-separated "
            "labels) or an IP address"
        )
    return None


def _check_address(value: str) -> str:
    # the coordinator builds http://{address}:{port}/commands from it: a scheme, path, port or
    # space here would make that URL unparseable (a failed dispatch with a traceback)
    problem = _host_problem(value)
    if problem is not None:
        raise ValueError(
            f"address must be a host name or IP address without scheme, port or path "
            f"(e.g. 'node-1.example', '10.0.0.5', '::1'): {problem}"
        )
    return value


def _check_health_url(value: str) -> str:
    # probed every health_check_interval: an unparseable URL would fail every probe forever
    example = "e.g. 'http://10.0.0.5:8080/health'"
    if len(value) > 2048 or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(
            f"health_url must be an absolute http(s) URL ({example}) of at most 2048 "
            "characters, without spaces or control characters"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(
            f"health_url {value[:80]!r} is not a valid URL ({exc}); {example}"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"health_url must be an absolute http:// or https:// URL; {example}")
    host = parts.netloc.rpartition("@")[2]
    if port is not None or host.endswith(":"):
        host = host.rpartition(":")[0]
    problem = _host_problem(host)
    if problem is not None:
        raise ValueError(f"health_url's host is not valid: {problem}; {example}")
    return value


Address = Annotated[
    str,
    Field(min_length=1, max_length=255, description="Host name or IP the coordinator can reach"),
    AfterValidator(_check_address),
]
"""A node's address: a host name or an IP literal (IPv6 with or without brackets), nothing else."""

HealthUrl = Annotated[
    str,
    AfterValidator(_check_health_url),
    Field(description="An absolute http(s) URL the coordinator probes"),
]
"""A node's ``health_url``: absolute ``http``/``https`` with a valid host; kept as written."""


class NodeRegistration(Payload):
    """``POST /api/v1/nodes``: a node announces itself (registering an existing id updates it)."""

    id: Identifier
    name: ShortText = Field(default="", description="Human name; defaults to the id")
    provider: ShortText = Field(default="docker", min_length=1)
    status: NodeState = "active"
    address: Address
    port: Port
    labels: Labels = Field(default_factory=dict)
    capabilities: dict[LabelKey, bool] = Field(default_factory=dict, max_length=MAX_LABELS)
    health_url: HealthUrl | None = Field(
        default=None, description="If set, the coordinator probes it every health_check_interval"
    )
    version: ShortText | None = None
    dispatch_key: str | None = Field(
        default=None,
        min_length=DISPATCH_KEY_MIN_LENGTH,
        max_length=512,
        exclude=True,
        repr=False,
        description=(
            "lightd: the secret this node verifies command JWTs with (and signs its node proofs "
            "with): a random value a lightd agent makes once and keeps in its state directory. "
            "Write-only: the coordinator stores it beside the node but never serves it (no "
            "answer, event or record shown contains it). Without it the node's commands are "
            "sent unsigned."
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

    # Checked at the edge (registration, update); a record read back from a registry written
    # before those checks existed must still load, so here they are plain strings.
    address: str = Field(min_length=1, description="Host name or IP the coordinator can reach")
    health_url: str | None = Field(
        default=None, description="If set, the coordinator probes it every health_check_interval"
    )

    created_at: Timestamp
    last_seen: Timestamp


class NodeUpdate(Request):
    """``PUT /api/v1/nodes/{id}``: a partial update; only the fields given change."""

    name: ShortText | None = Field(default=None, min_length=1)
    provider: ShortText | None = Field(default=None, min_length=1)
    status: NodeState | None = None
    address: Address | None = None
    port: Port | None = None
    labels: Labels | None = None
    capabilities: dict[LabelKey, bool] | None = Field(default=None, max_length=MAX_LABELS)
    health_url: HealthUrl | None = None

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
    services: list[Service] | None = Field(default=None, max_length=1000)
