"""``lightd-coordinator containers backup create|list|show|restore|delete|download``.

Each verb calls the coordinator's REST sugar (``/api/v1/nodes/{id}/containers/{server}/
backups...``, the ``backup.*`` container commands). ``create`` and ``restore`` wait for the
outcome by default on a terminal (``--wait``/``--no-wait``), showing its progress on stderr;
``download`` streams the archive to a file (``-o``, default ``<server>-<backup>.tar.gz``;
``-`` for stdout) with a byte count as it goes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from lightd_coordinator.operator.client import Answer, Api, OperatorError
from lightd_coordinator.operator.rendering import Progress, out
from lightd_shared.backups import BackupInfo, BackupList, BackupRemoved
from lightd_shared.commands import CommandResult
from lightd_shared.durations import parse_duration
from lightd_shared.tables import table

__all__ = ["add_backup_verbs", "run_backup"]


def add_backup_verbs(
    c_sub: Any, verb: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """``containers backup VERB``, added to the ``containers`` sub-parsers."""
    backup = c_sub.add_parser("backup", help="back a server's volume up, list, restore ...")
    b_sub = backup.add_subparsers(dest="backup_verb", metavar="VERB", required=True)

    def waiting(parser: argparse.ArgumentParser) -> None:
        wait = parser.add_mutually_exclusive_group()
        wait.add_argument(
            "--wait",
            dest="wait",
            action="store_true",
            default=None,
            help="wait for the outcome, showing progress (default on a terminal)",
        )
        wait.add_argument("--no-wait", dest="wait", action="store_false", help="return at once")
        parser.add_argument("--timeout", default="1h", help="how long --wait waits (1h)")

    create = verb(b_sub.add_parser("create", help="back a server's volume up"))
    create.add_argument("node")
    create.add_argument("server")
    create.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a .gitignore-style pattern to leave out (repeatable)",
    )
    waiting(create)
    listing = verb(b_sub.add_parser("list", help="a server's backups"))
    listing.add_argument("node")
    listing.add_argument("server")
    for name, text in (
        ("show", "one backup's metadata"),
        ("restore", "restore the volume from a backup (stops and restarts a running server)"),
        ("delete", "delete a backup and its archive"),
        ("download", "save a backup's archive (tar.gz)"),
    ):
        parser = verb(b_sub.add_parser(name, help=text))
        parser.add_argument("node")
        parser.add_argument("server")
        parser.add_argument("backup")
        if name == "restore":
            waiting(parser)
        if name == "download":
            parser.add_argument("-o", "--output", help="the file ('-': stdout)")


def _info_rows(backups: list[BackupInfo]) -> str:
    rows = [
        [
            b.id,
            b.state,
            b.target,
            "" if b.size is None else str(b.size),
            str(b.created),
            "" if b.last_restore is None else b.last_restore.state,
            b.error or "",
        ]
        for b in backups
    ]
    return table(["BACKUP", "STATE", "TARGET", "SIZE", "CREATED", "RESTORE", "ERROR"], rows)


def _details(info: BackupInfo) -> str:
    lines = [
        f"backup:   {info.id}",
        f"server:   {info.server}",
        f"state:    {info.state}",
        f"target:   {info.target}",
        f"created:  {info.created}",
        f"finished: {info.finished or ''}",
        f"size:     {'' if info.size is None else info.size}",
        f"sha256:   {info.checksum or ''}",
        f"entries:  {'' if info.files is None else info.files}",
        f"ignored:  {', '.join(info.ignored)}",
    ]
    if info.skipped:
        lines.append(f"skipped:  {', '.join(info.skipped)}")
    if info.error:
        lines.append(f"error:    {info.error}")
    if info.last_restore is not None:
        r = info.last_restore
        lines.append(f"restore:  {r.state} ({r.started} .. {r.finished or ''}) {r.error or ''}")
    return "\n".join(line.rstrip() for line in lines)


def _answer(answer: Answer[CommandResult]) -> BackupInfo | BackupList | BackupRemoved:
    result = answer.model
    if result.status != "success":
        raise OperatorError(f"{result.status}: {result.output}")
    data = result.data
    if not isinstance(data, BackupInfo | BackupList | BackupRemoved):
        raise OperatorError(f"the answer holds no backup: {result.output}")
    return data


def _wait(
    api: Api, args: argparse.Namespace, base: str, backup: str, *, restore: bool
) -> BackupInfo:
    budget = parse_duration(args.timeout).total_seconds()
    deadline = time.monotonic() + budget
    progress = Progress()
    try:
        while True:
            info = _answer(api.fetch(CommandResult, "GET", f"{base}/{backup}"))
            assert isinstance(info, BackupInfo)
            state = (
                info.last_restore.state if restore and info.last_restore is not None else info.state
            )
            if state != "running":
                return info
            progress.show(f"{'restore from' if restore else 'backup'} {backup}: running")
            if time.monotonic() > deadline:
                raise OperatorError(
                    f"backup {backup} still running after {args.timeout}; follow it with "
                    f"`lightd-coordinator containers backup show {args.node} {args.server} "
                    f"{backup}`"
                )
            time.sleep(0.5)
    finally:
        progress.done()


def _download(api: Api, args: argparse.Namespace, base: str) -> int:
    target = args.output or f"{args.server}-{args.backup}.tar.gz"
    path = f"{base}/{args.backup}/download"
    progress = Progress()
    try:
        with api.client.stream("GET", path, timeout=httpx.Timeout(60.0, read=300.0)) as response:
            if response.status_code >= 400:
                response.read()
                raise api.refusal("GET", path, response)
            total = response.headers.get("content-length")
            sink = sys.stdout.buffer if target == "-" else Path(target).open("wb")
            written = 0
            try:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
                    progress.show(f"{written} of {total or '?'} bytes")
            finally:
                if target != "-":
                    sink.close()
    except httpx.HTTPError as exc:
        raise OperatorError(f"download failed: {type(exc).__name__} ({exc})") from None
    finally:
        progress.done()
    if target != "-":
        out(f"{target}: {written} bytes", err=True)
    return 0


def run_backup(api: Api, args: argparse.Namespace, containers: str) -> int:
    base = f"{containers}/{args.server}/backups"
    verb = args.backup_verb
    if verb == "download":
        return _download(api, args, base)
    if verb == "create":
        answer = api.fetch(CommandResult, "POST", base, json={"ignore": args.ignore})
    elif verb == "list":
        answer = api.fetch(CommandResult, "GET", base)
    elif verb == "show":
        answer = api.fetch(CommandResult, "GET", f"{base}/{args.backup}")
    elif verb == "restore":
        answer = api.fetch(CommandResult, "POST", f"{base}/{args.backup}/restore")
    else:
        answer = api.fetch(CommandResult, "DELETE", f"{base}/{args.backup}")
    data = _answer(answer)
    if verb in ("create", "restore") and isinstance(data, BackupInfo):
        wait = sys.stdout.isatty() if args.wait is None else args.wait
        if wait:
            data = _wait(api, args, base, data.id, restore=verb == "restore")
    if args.json:
        out(json.dumps(data.model_dump(mode="json"), indent=2))
    elif isinstance(data, BackupList):
        out(_info_rows(data.backups))
    elif isinstance(data, BackupRemoved):
        out(f"backup {data.backup} of {data.server}: deleted")
    elif verb in ("create", "restore"):
        out(_info_rows([data]))
    else:
        out(_details(data))
    failed = isinstance(data, BackupInfo) and (
        data.state == "failed"
        or (
            verb == "restore"
            and data.last_restore is not None
            and data.last_restore.state == "failed"
        )
    )
    return 1 if failed else 0
