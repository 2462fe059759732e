"""``lightd remote ...``: the operator's remote-sync verbs, talking to the running agent's API.

    lightd remote status                       remote health, outbox depth, dead letters
    lightd remote config show                  GET  /remote/config (token masked)
    lightd remote config reload                POST /remote/config/reload
    lightd remote config pull [--apply]        POST /remote/config/pull[?apply=true]
    lightd remote config push                  POST /remote/config/push
    lightd remote dead-letters list            GET  /remote/dead-letters
    lightd remote dead-letters replay ID       POST /remote/dead-letters/ID/replay
    lightd remote dead-letters discard ID      DELETE /remote/dead-letters/ID

The agent's address and token come from the same ``config.json`` as ``lightd run``
(``-c PATH``). :func:`add_remote_commands` registers the verbs on ``lightd``'s parser; the
chosen handler is stored as ``args.handler``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from lightd_agent.config import ConfigError, load_config
from lightd_shared.pacing import listen_url

__all__ = ["add_remote_commands", "run_remote_command"]

Handler = Callable[[argparse.Namespace], int]
EXIT_CONFIG = 2  # as ``lightd run``: the config is at fault


def _agent(args: argparse.Namespace) -> httpx.Client:
    config = load_config(args.config)
    scheme = "https" if config.server.tls.https else "http"
    base_url = listen_url(config.server.host, config.server.port, scheme)
    headers = {}
    if config.authorization.enabled and config.authorization.token:
        headers["Authorization"] = f"Bearer {config.authorization.token}"
    timeout = float(getattr(args, "timeout", 30.0))
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        verify=config.server.tls.client_verify(),
    )


def _call(args: argparse.Namespace, method: str, path: str) -> Any:
    with _agent(args) as client:
        response = client.request(method, path)
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.is_error:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        raise _Failed(f"{method} {path}: HTTP {response.status_code}: {detail}")
    return body


class _Failed(Exception):
    pass


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _print_pairs(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {'-' if value is None else value}")


def _status(args: argparse.Namespace) -> int:
    status = _call(args, "GET", "/remote/status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    age = status.get("oldest_undelivered_age_seconds")
    _print_pairs(
        [
            ("remote", status["remote"]),
            ("last check", status.get("last_check")),
            ("last error", status.get("last_error")),
            ("outbox", f"{status['outbox_depth']} of {status['outbox_limit']}"),
            ("outbox full", "YES: lifecycle actions refused" if status["outbox_full"] else "no"),
            ("unwritten", status.get("outbox_unwritten", 0)),
            ("degraded", status.get("degraded_reason") or "no"),
            ("oldest undelivered", None if age is None else f"{age:.1f}s"),
            ("dead letters", status["dead_letters"]),
        ]
    )
    return 0


def _config_show(args: argparse.Namespace) -> int:
    print(json.dumps(_call(args, "GET", "/remote/config"), indent=2))
    return 0


def _config_reload(args: argparse.Namespace) -> int:
    print(_call(args, "POST", "/remote/config/reload")["message"])
    return 0


def _config_pull(args: argparse.Namespace) -> int:
    apply = bool(getattr(args, "apply", False))
    path = "/remote/config/pull" + ("?apply=true" if apply else "")
    result = _call(args, "POST", path)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    document = result["config"]
    print(
        f"pulled from the remote: {len(document['containers'])} containers, "
        f"{len(document['settings'])} settings"
    )
    if apply:
        rows = [[a["id"] or "?", a["outcome"], a["detail"]] for a in result["applied"]]
        print(_table(rows, ["SERVER", "OUTCOME", "DETAIL"]) if rows else "nothing to apply")
    return 0


def _config_push(args: argparse.Namespace) -> int:
    document = _call(args, "POST", "/remote/config/push")
    print(f"pushed to the remote: {len(document['containers'])} containers")
    return 0


def _dead_list(args: argparse.Namespace) -> int:
    letters = _call(args, "GET", "/remote/dead-letters")["dead_letters"]
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    rows = [
        [
            str(d["id"]),
            d["server"],
            str(d["sequence"]),
            d["body"].get("status") or f"error: {d['body'].get('error')}",
            d["failed_at"],
            d["reason"],
        ]
        for d in letters
    ]
    print(_table(rows, ["ID", "SERVER", "SEQ", "UPDATE", "FAILED AT", "REASON"]))
    return 0


def _dead_replay(args: argparse.Namespace) -> int:
    print(_call(args, "POST", f"/remote/dead-letters/{args.id}/replay")["message"])
    return 0


def _dead_discard(args: argparse.Namespace) -> int:
    print(_call(args, "DELETE", f"/remote/dead-letters/{args.id}")["message"])
    return 0


def add_remote_commands(subparsers: Any) -> None:
    """Register ``lightd remote ...`` on ``lightd``'s subparsers (``add_subparsers()``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=None,
        help="the agent's config.json (default: ./config.json, then /etc/lightd/config.json)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    remote = subparsers.add_parser(
        "remote", help="remote sync: status, config pull/push/reload, dead letters"
    )
    verbs = remote.add_subparsers(dest="remote_command", metavar="VERB", required=True)
    verbs.add_parser(
        "status", parents=[common], help="remote health, outbox depth, dead letters"
    ).set_defaults(handler=_status)

    config = verbs.add_parser("config", help="show, reload, pull or push the remote config")
    config_verbs = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    for name, handler, text in [
        ("show", _config_show, "the running remote settings (token masked)"),
        ("reload", _config_reload, "re-read config.json and apply the remote block now"),
        ("pull", _config_pull, "GET {url}/config from the remote"),
        ("push", _config_push, "POST this agent's config to {url}/config"),
    ]:
        verb = config_verbs.add_parser(name, parents=[common], help=text)
        verb.set_defaults(handler=handler)
        if name == "pull":
            verb.add_argument(
                "--apply",
                action="store_true",
                help="also create the pulled servers this agent does not have yet",
            )

    dead = verbs.add_parser("dead-letters", help="updates the remote refused for good")
    dead_verbs = dead.add_subparsers(dest="dead_command", metavar="ACTION", required=True)
    dead_verbs.add_parser("list", parents=[common], help="list them").set_defaults(
        handler=_dead_list
    )
    replay = dead_verbs.add_parser(
        "replay", parents=[common], help="send one again (same Idempotency-Key)"
    )
    replay.add_argument("id", type=int)
    replay.set_defaults(handler=_dead_replay)
    discard = dead_verbs.add_parser("discard", parents=[common], help="forget one for good")
    discard.add_argument("id", type=int)
    discard.set_defaults(handler=_dead_discard)


def run_remote_command(args: argparse.Namespace) -> int:
    """Run the handler chosen by :func:`add_remote_commands`; errors become one clear line."""
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"lightd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except httpx.HTTPError as exc:
        print(
            f"lightd: cannot reach the agent's API ({exc}); is `lightd run` running?",
            file=sys.stderr,
        )
    except _Failed as exc:
        print(f"lightd: {exc}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lightd_agent.remote.cli remote ...`` (the same verbs without ``lightd``)."""
    parser = argparse.ArgumentParser(prog="lightd")
    add_remote_commands(parser.add_subparsers(dest="command", required=True))
    return run_remote_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
