"""The ``lightd`` command line: ``run``, ``config``, ``status``, ``token show|reset``.

A bad config never starts a half-configured agent: ``run`` prints one message naming the file
and every field at fault and exits with status 2. Importing this module first makes the
modules the agent never uses unimportable in the process (``httpx._main``, ``pydantic.v1``,
``requests``' charset guesser: :func:`lightd_agent.footprint.skip_unused_imports`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightd_agent.footprint import skip_unused_imports

# Before httpx, FastAPI and the Docker SDK are first imported (this module brings httpx in):
# modules they would load for nothing, 4 to 7 MiB of the agent's RSS (see footprint.py).
skip_unused_imports()

import httpx  # noqa: E402

from lightd_agent import __version__  # noqa: E402
from lightd_agent.config import (  # noqa: E402
    AgentConfig,
    ConfigError,
    default_config_document,
    find_config_path,
    load_config,
)
from lightd_agent.remote.cli import add_remote_commands, run_remote_command  # noqa: E402
from lightd_shared.pacing import listen_url  # noqa: E402
from lightd_shared.tables import fields  # noqa: E402
from lightd_shared.tokens import generate_token  # noqa: E402

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightd",
        description="lightd agent: runs Docker containers (servers) on this host.",
    )
    parser.add_argument("--version", action="version", version=f"lightd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "-c",
            "--config",
            metavar="PATH",
            help="config.json to use (default: ./config.json, then /etc/lightd/config.json)",
        )

    run = commands.add_parser("run", help="start the agent daemon")
    with_config(run)

    config = commands.add_parser("config", help="print a complete default config.json")
    config.add_argument("-o", "--output", metavar="PATH", help="write it to PATH instead")

    status = commands.add_parser("status", help="ask a running agent for its health")
    with_config(status)
    status.add_argument("--url", help="agent URL (default: from the config's server section)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    token = commands.add_parser("token", help="show or reset the API token")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    with_config(token_commands.add_parser("show", help="print authorization.token"))
    with_config(token_commands.add_parser("reset", help="write a new token to the config file"))
    add_remote_commands(commands)
    return parser


def _error(message: str) -> None:
    print(f"lightd: {message}", file=sys.stderr)


def _run(path: str | None) -> int:
    try:
        config_path = find_config_path(path)
        config = load_config(config_path)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    import uvicorn

    from lightd_agent.app import create_app
    from lightd_agent.footprint import HeapTrimmer, limit_malloc_arenas
    from lightd_agent.logs import configure_logging

    limit_malloc_arenas()  # before any thread starts: see footprint.py

    configure_logging(
        config.logging.level,
        json_format=config.logging.json_format,
        secrets=config.secrets(),
    )
    try:
        app = create_app(config, config_path=config_path.resolve())
    except OSError as exc:
        _error(
            f"cannot use the state directory {config.storage.state_dir}: {exc}; make "
            "storage.base_path writable by the agent's user"
        )
        return EXIT_CONFIG
    from lightd_agent.shutdown import DrainingServer

    server = DrainingServer.for_app(
        app,
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=10,
            **config.server.tls.uvicorn_options(),
        ),
    )
    trimmer = HeapTrimmer()  # free C heap back to the system while running: see footprint.py
    trimmer.start()
    try:
        server.run()
    finally:
        trimmer.stop()
    return 0 if server.started else 1


def _print_config(output: str | None) -> int:
    text = json.dumps(default_config_document(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    target = Path(output)
    if target.exists():
        _error(f"{target} exists; not overwriting it (remove it first)")
        return 1
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)
    print(f"wrote {target} (it holds the API token: keep it private)")
    return 0


def _agent_url(config: AgentConfig) -> str:
    scheme = "https" if config.server.tls.https else "http"
    return listen_url(config.server.host, config.server.port, scheme)


def _shown(value: Any) -> str:
    """A health value for a person: ``-`` for none, yes/no, JSON for lists and objects."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _format_health(health: dict[str, Any]) -> str:
    docker = health.get("docker") or {}
    node = health.get("node") or {}
    counts = health.get("containers") or {}
    rows = [
        ("status", health.get("status", "?")),
        ("node", f"{node.get('id', '?')} ({node.get('name', '')})"),
        ("version", health.get("version", "?")),
        ("uptime", health.get("uptime", "?")),
        (
            "docker",
            f"reachable, engine {docker.get('version')}"
            if docker.get("reachable")
            else f"UNREACHABLE: {docker.get('error')}",
        ),
        ("servers", str(counts.get("total", 0))),
    ]
    for state, count in counts.items():
        if state != "total" and count:
            rows.append((f"  {state}", str(count)))
    known = {"status", "node", "version", "uptime", "docker", "containers", "started_at"}
    for name, section in health.items():
        if name in known:
            continue
        if isinstance(section, dict):
            for key, value in section.items():
                rows.append((f"{name}.{key}", _shown(value)))
        else:
            rows.append((name, _shown(section)))
    return fields(rows)


def _status(path: str | None, url: str | None, raw: bool) -> int:
    verify: Any = True
    if url is None:
        try:
            config = load_config(path)
        except ConfigError as exc:
            _error(f"{exc}\n(or pass --url)")
            return EXIT_CONFIG
        url = _agent_url(config)
        verify = config.server.tls.client_verify()
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=5, verify=verify)
        response.raise_for_status()
        health = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        _error(f"no agent answered at {url} ({exc}); is `lightd run` running?")
        return EXIT_UNREACHABLE
    print(json.dumps(health, indent=2) if raw else _format_health(health))
    return 0


def _token(action: str, path: str | None) -> int:
    try:
        config_path = find_config_path(path)
        if action == "show":
            config = load_config(config_path)
            print(config.authorization.token or "(no token: authorization is disabled)")
            return 0
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    except (OSError, ValueError) as exc:
        _error(f"cannot read {path or 'config.json'}: {exc}")
        return EXIT_CONFIG
    if not isinstance(document, dict):
        _error(f"{config_path}: the config must be a JSON object")
        return EXIT_CONFIG
    token = generate_token()
    section = document.setdefault("authorization", {})
    if not isinstance(section, dict):
        _error(f"{config_path}: authorization must be an object")
        return EXIT_CONFIG
    section["token"] = token
    try:
        _rewrite_in_place(config_path, json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        _error(f"cannot write {config_path}: {exc}; the old token is still in place")
        return EXIT_CONFIG
    print(token)
    print(
        f"wrote the new token to {config_path}; restart the agent to use it",
        file=sys.stderr,
    )
    return 0


def _rewrite_in_place(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, keeping the file's mode, owner and group.

    A systemd install keeps ``/etc/lightd/config.json`` as ``root:lightd 0640`` and runs the
    agent as ``lightd``; a new file owned by whoever ran ``token reset`` (root) with another
    mode would be one the agent can no longer read. The temporary file is made owner-only (it
    holds the new token), given the old owner and group (when allowed: only root may give a
    file away; otherwise the group alone if the caller belongs to it, else neither) and the old
    mode, and then renamed over the config.
    """
    old = path.stat()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            for uid, gid in ((old.st_uid, old.st_gid), (-1, old.st_gid)):
                try:
                    os.fchown(handle.fileno(), uid, gid)
                    break
                except PermissionError:
                    continue
            os.fchmod(handle.fileno(), stat.S_IMODE(old.st_mode))
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        return _run(args.config)
    if args.command == "config":
        return _print_config(args.output)
    if args.command == "status":
        return _status(args.config, args.url, args.json)
    if args.command == "token":
        return _token(args.token_command, args.config)
    if args.command == "remote":
        return run_remote_command(args)
    parser.print_help()  # pragma: no cover - argparse rejects unknown commands
    return 2
