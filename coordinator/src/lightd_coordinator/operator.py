"""The operator verbs of ``lightd-coordinator``: a client of a running coordinator's API.

::

    lightd-coordinator nodes list [--status S] [--label k=v]    table of nodes
    lightd-coordinator nodes show ID                             one node, its status, services
    lightd-coordinator dispatch NODE ACTION [--type exec|container] [--timeout 30s]
                                [--param key=value ...]          run a command, wait, print output
    lightd-coordinator dispatch --selector env=dev ACTION ...    ... on every matching node
    lightd-coordinator containers list NODE
    lightd-coordinator containers create NODE (--spec FILE | --id ID --image IMG
                                [--cmd CMD] [--port N ...])
    lightd-coordinator containers start|stop|restart|kill|delete|status|logs NODE SERVER
    lightd-coordinator services                                  services per node
    lightd-coordinator events [--types a,b] [--node ID]          tail /ws live

Every verb takes ``--url`` (default: the config's server address), ``--token`` (default:
``$LIGHTD_COORD_TOKEN``, else the config's ``server.auth_token``) and ``--json`` (the API's JSON
instead of tables). Tables and progress lines are for people; ``--json`` is for scripts. While a
command runs, a progress line on stderr (only on a terminal) says which nodes are still working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from lightd_shared.commands import FINAL_STATUSES
from lightd_shared.durations import parse_duration

__all__ = ["OperatorError", "add_operator_commands", "run_operator"]

TOKEN_ENV = "LIGHTD_COORD_TOKEN"
_POLL = 0.2


def _out(text: str, *, err: bool = False) -> None:
    """One line to stdout (results) or stderr (what people should know but scripts not parse)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{text}\n")
    stream.flush()


class OperatorError(Exception):
    """A verb cannot be carried out; the message says why and what to do."""


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise OperatorError(f"{what} {value!r} must look like key=value")
        found[key] = item
    return found


def _labels(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


# -- the parser ----------------------------------------------------------------------------
def add_operator_commands(sub: Any, connection: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the operator verbs to the ``lightd-coordinator`` parser (``connection`` adds the
    ``-c/--url/--token`` options every verb shares)."""

    def verb(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        connection(parser)
        parser.add_argument("--json", action="store_true", help="print the API's JSON")
        return parser

    nodes = sub.add_parser("nodes", help="list, show or delete nodes")
    nodes_sub = nodes.add_subparsers(dest="nodes_verb", metavar="VERB", required=True)
    listing = verb(nodes_sub.add_parser("list", help="all nodes, as a table"))
    listing.add_argument("--status", choices=["active", "inactive"])
    listing.add_argument("--label", action="append", default=[], help="key=value (repeatable)")
    show = verb(nodes_sub.add_parser("show", help="one node: record, status, services"))
    show.add_argument("node")
    delete = verb(
        nodes_sub.add_parser(
            "delete", help="unregister a node (it may enrol again, with a new dispatch key)"
        )
    )
    delete.add_argument("node")

    dispatch = verb(sub.add_parser("dispatch", help="run a command on a node or a selector"))
    dispatch.add_argument("node", nargs="?", help="the node id (or use --selector)")
    dispatch.add_argument("action", help="shell command (exec) or container action")
    dispatch.add_argument("--selector", action="append", default=[], help="key=value labels")
    dispatch.add_argument("--type", choices=["exec", "container"], default="exec")
    dispatch.add_argument("--timeout", default="30s", help="how long to wait (default 30s)")
    dispatch.add_argument(
        "--param", action="append", default=[], help="key=value params (repeatable)"
    )
    dispatch.add_argument("--user", help="who is asking (recorded with the command)")

    containers = sub.add_parser("containers", help="servers on a node")
    c_sub = containers.add_subparsers(dest="containers_verb", metavar="VERB", required=True)
    verb(c_sub.add_parser("list", help="the node's servers")).add_argument("node")
    create = verb(c_sub.add_parser("create", help="create a server on a node"))
    create.add_argument("node")
    create.add_argument("--spec", help="a JSON container spec file ('-': stdin)")
    create.add_argument("--id", dest="server_id", help="the server id")
    create.add_argument("--image", help="the image")
    create.add_argument("--cmd", help="startup command (runs with /bin/sh -c)")
    create.add_argument("--port", type=int, action="append", default=[], help="container port")
    for action in ("start", "stop", "restart", "kill", "reinstall", "delete", "status", "logs"):
        command = verb(c_sub.add_parser(action, help=f"{action} a server"))
        command.add_argument("node")
        command.add_argument("server")
        if action == "logs":
            command.add_argument("--tail", type=int, default=None, help="last N lines")
    run_inside = verb(c_sub.add_parser("exec", help="run a command inside a server"))
    run_inside.add_argument("node")
    run_inside.add_argument("server")
    run_inside.add_argument(
        "argv",
        nargs="+",
        metavar="COMMAND",
        help="one word: runs with /bin/sh -c; several: as is (put options after them, or use --)",
    )
    run_inside.add_argument("--timeout", default="30s", help="how long it may run (30s)")

    verb(sub.add_parser("services", help="services per node"))

    events = verb(sub.add_parser("events", help="tail the live event stream"))
    events.add_argument("--types", help="comma-separated event types")
    events.add_argument("--node", help="only events about this node")


# -- running -------------------------------------------------------------------------------
class Api:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.client = httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OperatorError(
                f"cannot reach the coordinator at {self.url}: {type(exc).__name__} ({exc}); "
                "is it running? (--url)"
            ) from None
        if response.status_code == 401:
            raise OperatorError(f"the coordinator wants a token: pass --token or set ${TOKEN_ENV}")
        if response.status_code >= 400:
            try:
                detail: Any = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if not isinstance(detail, str):
                detail = json.dumps(detail)
            raise OperatorError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        return response.json()


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], str]) -> None:
    _out(json.dumps(data, indent=2) if args.json else human())


def _node_rows(nodes: list[dict[str, Any]]) -> str:
    if not nodes:
        return "no nodes registered"
    rows = [
        [
            str(n["id"]),
            str(n.get("name", "")),
            str(n.get("status", "")),
            f"{n.get('address', '')}:{n.get('port', '')}",
            str(n.get("last_seen", "")),
            _labels(n.get("labels")),
        ]
        for n in nodes
    ]
    return table(["ID", "NAME", "STATUS", "ADDRESS", "LAST SEEN", "LABELS"], rows)


def _nodes(api: Api, args: argparse.Namespace) -> int:
    if args.nodes_verb == "list":
        params: list[tuple[str, str]] = [
            ("label", f"{k}={v}") for k, v in _pairs(args.label, "--label").items()
        ]
        if args.status:
            params.append(("status", args.status))
        data = api.call("GET", "/api/v1/nodes", params=params)
        _emit(args, data, lambda: _node_rows(data["nodes"]))
        return 0
    if args.nodes_verb == "delete":
        gone = api.call("DELETE", f"/api/v1/nodes/{args.node}")
        _emit(args, gone, lambda: str(gone["message"]))
        return 0
    node = api.call("GET", f"/api/v1/nodes/{args.node}")
    status = api.call("GET", f"/api/v1/nodes/{args.node}/status")
    services = api.call("GET", "/api/v1/services")["services"].get(args.node, [])

    def human() -> str:
        lines = [
            f"{k:<13} {v}"
            for k, v in [
                ("id", node["id"]),
                ("name", node.get("name", "")),
                ("status", f"{status['status']} (up {status.get('uptime', '0s')})"),
                ("address", f"{node.get('address')}:{node.get('port')}"),
                ("provider", node.get("provider", "")),
                ("labels", _labels(node.get("labels")) or "-"),
                (
                    "capabilities",
                    ",".join(k for k, v in sorted(node.get("capabilities", {}).items()) if v)
                    or "-",
                ),
                ("version", node.get("version") or "-"),
                ("last seen", node.get("last_seen", "")),
            ]
        ]
        lines.append("")
        lines.append(_service_rows({args.node: services}))
        return "\n".join(lines)

    _emit(args, {"node": node, "status": status, "services": services}, human)
    return 0


def _service_rows(services: dict[str, list[dict[str, Any]]]) -> str:
    rows = [
        [
            node,
            str(s["id"]),
            str(s.get("type", "")),
            str(s.get("status", "")),
            str(s.get("port") or ""),
            str(s.get("endpoint") or ""),
        ]
        for node, items in sorted(services.items())
        for s in items
    ]
    if not rows:
        return "no services reported"
    return table(["NODE", "SERVICE", "TYPE", "STATUS", "PORT", "ENDPOINT"], rows)


def _services(api: Api, args: argparse.Namespace) -> int:
    data = api.call("GET", "/api/v1/services")
    _emit(args, data, lambda: _service_rows(data["services"]))
    return 0


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in _pairs(args.param, "--param").items():
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    params["timeout"] = args.timeout
    return params


class _Progress:
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


def _wait(api: Api, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    progress = _Progress()
    current = {r["id"]: r for r in results}
    while True:
        waiting = [r for r in current.values() if r["status"] not in FINAL_STATUSES]
        if not waiting:
            break
        names = ", ".join(r["node_id"] for r in waiting[:5])
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        progress.show(f"waiting for {names}{more}: {waiting[0]['status']}")
        time.sleep(_POLL)
        for result in waiting:
            current[result["id"]] = api.call("GET", f"/api/v1/commands/{result['id']}")
    progress.done()
    return [current[r["id"]] for r in results]


def _print_results(args: argparse.Namespace, results: list[dict[str, Any]]) -> int:
    if args.json:
        _out(
            json.dumps(results[0] if len(results) == 1 and not args.selector else results, indent=2)
        )
    else:
        for result in results:
            if len(results) > 1 or args.selector:
                _out(f"== {result['node_id']}: {result['status']} ({result.get('duration')})")
            elif result["status"] != "success":
                _out(f"{result['status']} ({result.get('duration')})", err=True)
            if result.get("output"):
                _out(result["output"])
        if not results:
            _out("no active node matches the selector", err=True)
    return 0 if all(r["status"] == "success" for r in results) else 1


def _dispatch(api: Api, args: argparse.Namespace) -> int:
    command: dict[str, Any] = {"type": args.type, "action": args.action, "params": _params(args)}
    if args.user:
        command["user"] = args.user
    if args.selector:
        if args.node:
            raise OperatorError("give a node id or --selector, not both")
        body = {"selector": _pairs(args.selector, "--selector"), "command": command}
        started = api.call("POST", "/api/v1/commands", params={"async": "true"}, json=body)
        results = started["results"]
    else:
        if not args.node:
            raise OperatorError("give a node id or --selector key=value")
        results = [
            api.call(
                "POST",
                f"/api/v1/nodes/{args.node}/commands",
                params={"async": "true"},
                json=command,
            )
        ]
    return _print_results(args, _wait(api, results))


def _container_result(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        _out(json.dumps(result, indent=2))
        return 0 if result["status"] == "success" else 1
    if result["status"] != "success":
        _out(f"{result['status']}: {result.get('output', '')}", err=True)
        return 1
    output = result.get("output", "")
    try:
        data = json.loads(output)
    except ValueError:
        _out(output)
        return 0
    if isinstance(data, dict) and "containers" in data:
        rows = [
            [
                str(c["id"]),
                str(c["state"]),
                str(c.get("spec", {}).get("image", "")),
                ",".join(
                    f"{p.get('host') or '?'}->{p['container']}/{p.get('protocol', 'tcp')}"
                    for p in c.get("ports", [])
                ),
                str(c.get("started_at") or ""),
            ]
            for c in data["containers"]
        ]
        _out(
            table(["SERVER", "STATE", "IMAGE", "PORTS", "STARTED"], rows)
            if rows
            else "no servers on this node"
        )
    elif isinstance(data, dict):
        _out(
            table(
                ["SERVER", "STATE", "DETAIL"],
                [
                    [
                        str(data.get("id", "")),
                        str(data.get("state", "")),
                        str(data.get("error") or ""),
                    ]
                ],
            )
        )
    else:
        _out(output)
    return 0


def _budget(timeout: str) -> float:
    """How long to wait for an answer to work allowed ``timeout``: that, plus dispatch slack."""
    try:
        return parse_duration(timeout).total_seconds() + 30
    except ValueError as exc:
        raise OperatorError(f"--timeout {timeout!r}: {exc}") from None


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec:
        try:
            text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text("utf-8")
            spec = json.loads(text)
        except (OSError, ValueError) as exc:
            raise OperatorError(f"--spec {args.spec}: {exc}") from None
        if not isinstance(spec, dict):
            raise OperatorError("--spec must hold a JSON object (a container spec)")
        return spec
    if not args.server_id or not args.image:
        raise OperatorError("give --spec FILE, or at least --id and --image")
    spec = {"id": args.server_id, "image": args.image}
    if args.cmd:
        spec["startup_command"] = args.cmd
    if args.port:
        spec["ports"] = [{"container": port} for port in args.port]
    return spec


def _containers(api: Api, args: argparse.Namespace) -> int:
    base = f"/api/v1/nodes/{args.node}/containers"
    verb = args.containers_verb
    if verb == "list":
        result = api.call("GET", base)
    elif verb == "create":
        result = api.call("POST", base, json=_spec(args))
    elif verb == "status":
        result = api.call("GET", f"{base}/{args.server}")
    elif verb == "delete":
        result = api.call("DELETE", f"{base}/{args.server}")
    elif verb == "logs":
        params = {} if args.tail is None else {"tail": args.tail}
        result = api.call("GET", f"{base}/{args.server}/logs", params=params)
    elif verb == "exec":
        command: str | list[str] = args.argv[0] if len(args.argv) == 1 else list(args.argv)
        result = api.call(
            "POST",
            f"{base}/{args.server}/exec",
            json={"command": command, "timeout": args.timeout},
            timeout=_budget(args.timeout),
        )
    else:
        result = api.call("POST", f"{base}/{args.server}/{verb}")
    return _container_result(args, result)


def _event_line(envelope: dict[str, Any]) -> str:
    data = envelope.get("data")
    kind = envelope.get("type", "?")
    summary = ""
    if isinstance(data, dict):
        if kind == "server_update":
            update = data.get("update", {})
            what = update.get("status") or f"{update.get('error')}: {update.get('data', '')}"
            summary = f"{data.get('node')} {data.get('server')} {what}"
        elif kind == "command_result":
            summary = f"{data.get('node_id')} {data.get('id')} {data.get('status')}"
        elif kind == "initial_state":
            summary = f"{data.get('count', 0)} node(s)"
        else:
            summary = f"{data.get('id', '')} {data.get('status', '')}".strip()
    return f"{envelope.get('timestamp', '')}  {kind:<17} {summary}"


def _events(api: Api, args: argparse.Namespace) -> int:
    params = {k: v for k, v in {"types": args.types, "node": args.node}.items() if v}
    try:
        with api.client.stream(
            "GET", "/ws", params=params, timeout=httpx.Timeout(10, read=None)
        ) as response:
            if response.status_code != 200:
                response.read()
                raise OperatorError(f"/ws answered HTTP {response.status_code}: {response.text}")
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if args.json:
                    _out(payload)
                else:
                    _out(_event_line(json.loads(payload)))
    except httpx.HTTPError as exc:
        raise OperatorError(
            f"the event stream from {api.url} broke: {type(exc).__name__}"
        ) from None
    return 0


_VERBS: dict[str, Callable[[Api, argparse.Namespace], int]] = {
    "nodes": _nodes,
    "services": _services,
    "dispatch": _dispatch,
    "containers": _containers,
    "events": _events,
}


def run_operator(args: argparse.Namespace, url: str, token: str | None) -> int:
    """Run one operator verb; raise :class:`OperatorError` with a message for the user."""
    api = Api(url, token or os.environ.get(TOKEN_ENV))
    try:
        return _VERBS[args.command](api, args)
    finally:
        api.client.close()
