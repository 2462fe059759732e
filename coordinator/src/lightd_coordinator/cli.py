"""The ``lightd-coordinator`` command line (and its seed spelling, ``vendetta coordination``).

::

    lightd-coordinator config [--output PATH] [--force]   write a complete default config.yaml
    lightd-coordinator start [-c PATH] [--dev]            serve (./config.yaml if present)
    lightd-coordinator status [-c PATH] [--url URL]       health and nodes of a running server
    lightd-coordinator token [-c PATH] [--expires 1h]     mint a JWT for the API
    lightd-coordinator token show [--env-file .env] [--export]
                                                          the local cluster's operator token

and the operator verbs against a running coordinator (:mod:`lightd_coordinator.operator`):
``nodes list|show|delete``, ``dispatch``, ``containers ...``, ``services``, ``events``.

Problems end with one message on stderr and a non-zero exit status: 2 for wrong usage or a bad
configuration (as for the agent's ``lightd``), 1 for any other failure (an unreachable server,
a refused token, a command that did not succeed).

Over 400 lines: the `lightd-coordinator` command line's parser and the server-side verbs
(start, config, token, status); the operator verbs live in operator/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from lightd_coordinator import __version__
from lightd_coordinator.config import ConfigError, Settings, default_yaml, load_settings
from lightd_coordinator.operator import (
    TOKEN_ENV,
    OperatorError,
    add_operator_commands,
    run_operator,
)
from lightd_coordinator.operator.client import refusal
from lightd_coordinator.operator.parser import OPERATOR_COMMANDS
from lightd_shared.durations import DurationError, format_duration, parse_duration
from lightd_shared.pacing import listen_url
from lightd_shared.tables import table

DEFAULT_CONFIG = Path("config.yaml")
CLUSTER_ENV = Path(".env")
"""The local cluster's env file, written by ``scripts/up`` at the repository root."""
OPERATOR_TOKEN_KEY = "LIGHTD_OPERATOR_TOKEN"
EXIT_FAILURE = 1
EXIT_USAGE = 2
"""Wrong usage or a bad configuration: the same status as the agent's ``lightd``."""


def build_parser(prog: str = "lightd-coordinator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="lightd coordinator: node registry, command dispatch and events for agents.",
    )
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = sub.add_parser("config", help="write a complete default config.yaml")
    config.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_CONFIG, help="where (default ./config.yaml)"
    )
    config.add_argument("--force", action="store_true", help="overwrite an existing file")

    def config_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="config file (default: ./config.yaml if present, else built-in defaults)",
        )

    start = sub.add_parser("start", help="serve the coordination API")
    config_option(start)
    start.add_argument(
        "--dev",
        action="store_true",
        help="development run: allow auth with the seed's sample secrets",
    )

    status = sub.add_parser("status", help="show a running coordinator's health and nodes")
    config_option(status)
    status.add_argument("--url", help="coordinator URL (default: from the config's server)")
    status.add_argument(
        "--token", help=f"bearer token (default: ${TOKEN_ENV}, else the config's server token)"
    )
    status.add_argument(
        "--json", action="store_true", help="print {url, health, nodes} as JSON for scripts"
    )

    token = sub.add_parser(
        "token",
        help="mint a JWT for the API, or show the local cluster's operator token",
        description="Without a verb: mint a JWT signed with auth.jwt_secret. 'token show': "
        f"print the operator token ({OPERATOR_TOKEN_KEY}) of the local cluster that "
        "./scripts/up started, read from its .env.",
    )
    token.add_argument(
        "token_verb", nargs="?", choices=["show"], metavar="show", help="show the cluster's token"
    )
    config_option(token)
    token.add_argument("--subject", default="cli", help="the token's sub claim")
    token.add_argument(
        "--expires", default=None, help="lifetime such as '1h' (default auth.token_expiry)"
    )
    token.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="token show: the cluster's env file (default: .env here or in a parent directory)",
    )
    token.add_argument(
        "--export",
        action="store_true",
        help=f"token show: print 'export {TOKEN_ENV}=...' (for eval) instead of the token alone",
    )

    def connection(command: argparse.ArgumentParser) -> None:
        config_option(command)
        command.add_argument("--url", help="coordinator URL (default: from the config's server)")
        command.add_argument(
            "--token", help=f"bearer token (default: ${TOKEN_ENV}, else the config's server token)"
        )

    add_operator_commands(sub, connection)
    return parser


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"lightd-coordinator: error: {message}", file=sys.stderr)
    return code


def _settings(path: Path | None) -> Settings:
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_settings(path)


def _config(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.exists() and not args.force:
        return _fail(f"{output} already exists; pass --force to overwrite it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(default_yaml(), encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {output}: {exc.strerror or exc}")
    print(f"wrote {output}")
    return 0


def _check_registry(settings: Settings) -> None:
    """Open the sqlite file once before serving, so a bad ``registry.path`` is one message."""
    if settings.registry.provider != "sqlite":
        return
    import sqlite3

    from lightd_coordinator.registry.sqlite import SqliteRegistry

    registry = SqliteRegistry(settings.registry.path)
    try:
        registry.open_sync()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"registry.path {settings.registry.path!r} cannot be used as the sqlite registry: "
            f"{exc}; point it at a writable file"
        ) from None
    finally:
        registry.close_sync()


def _start(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    settings.check_startable(dev=args.dev)
    _check_registry(settings)
    import uvicorn  # deferred: the other commands start faster without it

    from lightd_coordinator.logs import configure_logging
    from lightd_coordinator.main import create_app

    configure_logging(
        settings.logging,
        secrets=[
            settings.server.auth_token,
            settings.auth.jwt_secret,
            settings.auth.agent_token or "",
            # a password in registry.redis_url: the code masks it; the filter is the backstop
            _redis_password(settings.registry.redis_url),
        ],
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            timeout_keep_alive=max(1, int(settings.server.idle_timeout.total_seconds())),
            timeout_graceful_shutdown=5,
            **settings.server.tls.uvicorn_options(),
        )
    )
    server.run()
    return 0 if server.started else 1


def _redis_password(url: str) -> str:
    """The password in a Redis URL (``redis://user:password@host``), if long enough to mask."""
    from lightd_shared.remote import url_userinfo

    password = (url_userinfo(url) or "").rpartition(":")[2]
    return password if len(password) >= 8 else ""


def _token_of(args: argparse.Namespace, settings: Settings) -> tuple[str | None, str]:
    """The token to send and where it came from (said when the coordinator refuses it)."""
    if args.token:
        return args.token, "--token"
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV], f"${TOKEN_ENV}"
    origin = "the config's server.auth_token"
    if args.config is None and not DEFAULT_CONFIG.is_file():
        origin += " (the built-in default: no config file was read)"
    return settings.server.auth_token, origin


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    url = (args.url or listen_url(settings.server.host, settings.server.port)).rstrip("/")
    token, source = _token_of(args, settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
            health = client.get("/health")
            nodes = client.get("/api/v1/nodes", headers=headers)
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach the coordinator at {url}: {type(exc).__name__} ({exc})")
    if health.status_code >= 500 and not health.content:
        return _fail(f"{url}/health answered HTTP {health.status_code}")
    try:
        report: dict[str, Any] = health.json()
    except ValueError:
        return _fail(f"{url}/health did not answer JSON; is this a lightd coordinator?")
    if args.json:
        if nodes.status_code != 200:
            return _fail(f"{url}/api/v1/nodes answered HTTP {nodes.status_code}: check --token")
        print(json.dumps({"url": url, "health": report, "nodes": nodes.json()}, indent=2))
        return 0
    print(
        table(
            ["COORDINATOR", "STATUS", "VERSION", "NODES", "ACTIVE"],
            [
                [
                    url,
                    str(report.get("status", "?")),
                    str(report.get("version", "?")),
                    str(report.get("total_nodes", "?")),
                    str(report.get("active_nodes", "?")),
                ]
            ],
        )
    )
    print()
    if nodes.status_code in (401, 403):
        return _fail(str(refusal("GET", "/api/v1/nodes", nodes, token=token, token_source=source)))
    if nodes.status_code != 200:
        return _fail(f"{url}/api/v1/nodes answered HTTP {nodes.status_code}")
    listing = nodes.json()
    rows = [
        [
            str(n.get("id", "")),
            str(n.get("name", "")),
            str(n.get("provider", "")),
            str(n.get("status", "")),
            f"{n.get('address', '')}:{n.get('port', '')}",
            str(n.get("last_seen", "")),
            ",".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items())),
        ]
        for n in listing.get("nodes", [])
    ]
    if rows:
        print(table(["ID", "NAME", "PROVIDER", "STATUS", "ADDRESS", "LAST SEEN", "LABELS"], rows))
    else:
        print("no nodes registered")
    return 0


def _find_env_file(given: Path | None) -> Path:
    if given is not None:
        return given
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / CLUSTER_ENV).is_file():
            return folder / CLUSTER_ENV
    raise OperatorError(
        f"no {CLUSTER_ENV} here or in a parent directory: start the local cluster with "
        "./scripts/up (it writes .env at the repository root), or pass --env-file"
    )


def _token_show(args: argparse.Namespace) -> int:
    """Print the operator token of the local cluster (``.env``'s ``LIGHTD_OPERATOR_TOKEN``)."""
    path = _find_env_file(args.env_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror or exc}") from None
    values = dict(
        line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#")
    )
    token = values.get(OPERATOR_TOKEN_KEY, "").strip()
    if not token:
        raise OperatorError(
            f"{path} has no {OPERATOR_TOKEN_KEY}: is it the env file ./scripts/up writes?"
        )
    print(f"export {TOKEN_ENV}={token}" if args.export else token)
    if sys.stderr.isatty():
        print(
            f"from {path}; set it for this shell with: "
            f'eval "$(lightd-coordinator token show --export)"',
            file=sys.stderr,
        )
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.token_verb == "show":
        return _token_show(args)
    from lightd_coordinator.security import COORDINATOR_AUDIENCE, mint_token

    settings = _settings(args.config)
    lifetime: timedelta = settings.auth.token_expiry
    if args.expires is not None:
        try:
            lifetime = parse_duration(args.expires)
        except DurationError as exc:
            return _fail(f"--expires: {exc}")
    if lifetime <= timedelta(0):
        return _fail("--expires must be longer than 0s")
    token = mint_token(
        settings.auth.jwt_secret,
        subject=args.subject,
        audience=COORDINATOR_AUDIENCE,
        expires_in=lifetime.total_seconds(),
    )
    print(token)
    print(
        f"valid for {format_duration(lifetime)}; use it as 'Authorization: Bearer <token>'",
        file=sys.stderr,
    )
    return 0


def _operator(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    url = (args.url or listen_url(settings.server.host, settings.server.port)).rstrip("/")
    token, source = _token_of(args, settings)
    return run_operator(args, url, token, token_source=source)


_COMMANDS = {
    "config": _config,
    "start": _start,
    "status": _status,
    "token": _token,
    **dict.fromkeys(OPERATOR_COMMANDS, _operator),
}


def main(argv: Sequence[str] | None = None, *, prog: str = "lightd-coordinator") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OperatorError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


def vendetta_main(argv: Sequence[str] | None = None) -> int:
    """``vendetta coordination <verb>``: the seed's spelling of ``lightd-coordinator <verb>``."""
    parser = argparse.ArgumentParser(prog="vendetta")
    parser.add_argument("--version", action="version", version=f"vendetta {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="GROUP")
    sub.add_parser("coordination", help="the coordination server", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.group is None:
        parser.print_help()
        return 2
    return main(rest, prog="vendetta coordination")
