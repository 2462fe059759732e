"""What the operator verbs print: tables of the shared models, event lines, a progress line.

Results go to stdout; what people should know but scripts should not parse goes to stderr. The
progress line is drawn only when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

from lightd_shared.commands import CommandResult, ServerRemoved
from lightd_shared.containers import ContainerList, ContainerStatus, ContainerView
from lightd_shared.durations import format_duration
from lightd_shared.events import Event, ServerUpdate
from lightd_shared.nodes import NodeRecord, NodeStatusView
from lightd_shared.remote import ErrorUpdate
from lightd_shared.services import Service
from lightd_shared.tables import fields, table
from lightd_shared.timestamps import format_timestamp

__all__ = [
    "Progress",
    "event_line",
    "labels",
    "node_details",
    "node_table",
    "out",
    "result_answer",
    "server_table",
    "service_table",
    "update_text",
]


def out(text: str, *, err: bool = False) -> None:
    """One line to stdout (results) or stderr (what people should know but scripts not parse)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{text}\n")
    stream.flush()


def labels(values: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((values or {}).items()))


def node_table(nodes: Sequence[NodeRecord]) -> str:
    if not nodes:
        return "no nodes registered"
    rows = [
        [
            n.id,
            n.name,
            n.provider,
            n.status,
            f"{n.address}:{n.port}",
            format_timestamp(n.last_seen),
            labels(n.labels),
        ]
        for n in nodes
    ]
    return table(["ID", "NAME", "PROVIDER", "STATUS", "ADDRESS", "LAST SEEN", "LABELS"], rows)


def node_details(node: NodeRecord, status: NodeStatusView, services: Sequence[Service]) -> str:
    capabilities = ",".join(k for k, v in sorted(node.capabilities.items()) if v)
    listing = fields(
        [
            ("id", node.id),
            ("name", node.name),
            ("status", f"{status.status} (up {format_duration(status.uptime)})"),
            ("address", f"{node.address}:{node.port}"),
            ("provider", node.provider),
            ("labels", labels(node.labels) or "-"),
            ("capabilities", capabilities or "-"),
            ("version", node.version or "-"),
            ("last seen", format_timestamp(node.last_seen)),
        ]
    )
    return f"{listing}\n\n{service_table({node.id: list(services)})}"


def service_table(services: Mapping[str, Sequence[Service]]) -> str:
    rows = [
        [node, s.id, s.type, s.status, str(s.port or ""), s.endpoint or ""]
        for node, items in sorted(services.items())
        for s in items
    ]
    if not rows:
        return "no services reported"
    return table(["NODE", "SERVICE", "TYPE", "STATUS", "PORT", "ENDPOINT"], rows)


def _ports(view: ContainerView) -> str:
    return ",".join(f"{p.host or '?'}->{p.container}/{p.protocol}" for p in view.ports)


def server_table(listing: ContainerList) -> str:
    rows = [
        [
            c.id,
            c.state,
            c.spec.image,
            _ports(c),
            format_timestamp(c.started_at) if c.started_at else "",
        ]
        for c in listing.containers
    ]
    if not rows:
        return "no servers on this node"
    return table(["SERVER", "STATE", "IMAGE", "PORTS", "STARTED"], rows)


def result_answer(result: CommandResult) -> str:
    """A successful container command's answer for people: its typed ``data`` as a table."""
    data = result.data
    if isinstance(data, ContainerList):
        return server_table(data)
    if isinstance(data, ServerRemoved):
        detail = "volumes removed" if data.volumes_removed else ""
        return table(["SERVER", "STATE", "DETAIL"], [[data.id, data.state, detail]])
    if isinstance(data, ContainerStatus):
        return table(["SERVER", "STATE", "DETAIL"], [[data.id, data.state, data.error or ""]])
    return result.output


def update_text(update: ServerUpdate) -> str:
    """``installing`` or ``failed: DETAILS``: what one ``server_update`` says."""
    body = update.update
    if isinstance(body, ErrorUpdate):
        return f"{body.error}: {body.data}" if body.data else body.error
    return body.status


def event_line(event: Event) -> str:
    """One ``/ws`` event as a line of ``lightd-coordinator events``."""
    data = event.data
    summary = ""
    if isinstance(data, dict):
        if event.type == "server_update":
            try:
                update = ServerUpdate.model_validate(data, strict=False)
                summary = f"{update.node} {update.server} {update_text(update)}"
            except ValueError:
                summary = f"{data.get('node', '')} {data.get('server', '')}".strip()
        elif event.type == "command_result":
            summary = f"{data.get('node_id')} {data.get('id')} {data.get('status')}"
        elif event.type == "initial_state":
            summary = f"{data.get('count', 0)} node(s)"
        else:
            summary = f"{data.get('id', '')} {data.get('status', '')}".strip()
    return f"{format_timestamp(event.timestamp)}  {event.type:<17} {summary}"


class Progress:
    """One line on stderr, rewritten in place, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.started = time.monotonic()

    def show(self, text: str) -> None:
        if self.live:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"\r\033[K{text} ({elapsed:.1f}s)")
            sys.stderr.flush()

    def done(self) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
