"""``lightd-coordinator containers files VERB NODE SERVER ...``: a server's files.

Small things travel as ``files.*`` commands (the REST sugar under
``/api/v1/nodes/{id}/containers/{server}/files``); ``upload`` and ``download`` stream through
the coordinator's relay routes (``.../files/upload``, ``.../files/download``), chunk by chunk,
printing their progress on stderr (rewritten in place on a terminal, a line per 10 % else).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from lightd_coordinator.operator.client import Answer, Api, OperatorError
from lightd_coordinator.operator.rendering import out
from lightd_shared.commands import CommandResult
from lightd_shared.files import FilesAnswer
from lightd_shared.tables import table

__all__ = ["FILES_VERBS", "add_files_verbs", "run_files_verb"]

FILES_VERBS: tuple[str, ...] = (
    "ls",
    "cat",
    "write",
    "upload",
    "download",
    "rm",
    "mkdir",
    "mv",
    "cp",
    "chmod",
    "compress",
    "decompress",
    "search",
)
_CHUNK = 256 * 1024
_TRANSFER_TIMEOUT = httpx.Timeout(60.0, read=600.0, write=600.0)


def add_files_verbs(
    c_sub: Any, verb: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """``containers files ...`` under the ``containers`` parser (``verb`` adds the shared
    connection options and ``--json``)."""
    files = c_sub.add_parser("files", help="a server's files: ls, cat, upload, download, ...")
    f_sub = files.add_subparsers(dest="files_verb", metavar="VERB", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser = verb(f_sub.add_parser(name, help=text))
        parser.add_argument("node")
        parser.add_argument("server")
        return parser

    ls = command("ls", "list a directory")
    ls.add_argument("path", nargs="?", default="/")
    ls.add_argument("-l", "--long", action="store_true", help="size, mode, modified")
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--limit", type=int, default=200)
    command("cat", "print a (small, text) file").add_argument("path")
    write = command("write", "replace a text file with --content or stdin")
    write.add_argument("path")
    write.add_argument("--content", help="the text ('@FILE' reads FILE); stdin when left out")
    upload = command("upload", "stream a local file up (any size up to the agent's limit)")
    upload.add_argument("local")
    upload.add_argument("path")
    download = command("download", "stream a file down ('-': stdout)")
    download.add_argument("path")
    download.add_argument("local")
    rm = command("rm", "delete files and folders")
    rm.add_argument("paths", nargs="+")
    command("mkdir", "create a folder (and its parents)").add_argument("path")
    mv = command("mv", "rename or move")
    mv.add_argument("source")
    mv.add_argument("target")
    cp = command("cp", "copy a file (-r: a folder)")
    cp.add_argument("source")
    cp.add_argument("target")
    cp.add_argument("-r", "--recursive", action="store_true")
    chmod = command("chmod", "set permission bits (octal)")
    chmod.add_argument("mode")
    chmod.add_argument("path")
    compress = command("compress", "make an archive of sources")
    compress.add_argument("output")
    compress.add_argument("sources", nargs="+")
    compress.add_argument("--format", choices=["tar.gz", "zip"], default="tar.gz")
    decompress = command("decompress", "extract an archive")
    decompress.add_argument("file")
    decompress.add_argument("--root", default="/", help="where to extract (default /)")
    search = command("search", "find entries by name (a glob or a substring)")
    search.add_argument("pattern")
    search.add_argument("--path", default="/")
    search.add_argument("--limit", type=int, default=100)


class _Meter:
    """Transfer progress on stderr."""

    def __init__(self, what: str, total: int | None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.live = sys.stderr.isatty()
        self.began = time.monotonic()
        self._tenth = 0

    def add(self, count: int) -> None:
        self.done += count
        if self.total:
            tenth = self.done * 10 // self.total
            text = f"{self.what}: {self.done}/{self.total} bytes ({self.done * 100 // self.total}%)"
        else:
            tenth, text = self._tenth, f"{self.what}: {self.done} bytes"
        if self.live:
            sys.stderr.write(f"\r\033[K{text}")
            sys.stderr.flush()
        elif tenth > self._tenth:
            out(text, err=True)
        self._tenth = tenth

    def finish(self) -> None:
        seconds = time.monotonic() - self.began
        if self.live:
            sys.stderr.write("\r\033[K")
        out(f"{self.what}: {self.done} bytes in {seconds:.1f}s", err=True)


def _answer(args: argparse.Namespace, answer: Answer[CommandResult]) -> int:
    result = answer.model
    if args.json:
        out(json.dumps(answer.raw, indent=2))
        return 0 if result.status == "success" else 1
    if result.status != "success":
        out(f"{result.status}: {result.output}", err=True)
        return 1
    data = result.data
    if not isinstance(data, FilesAnswer):
        out(result.output)
        return 0
    if data.names is not None:
        for name in data.names.files:
            out(name)
    elif data.entries is not None or data.search is not None:
        entries = data.entries.files if data.entries is not None else []
        if data.search is not None:
            entries = data.search.files
        rows = [
            [
                ("d" if e.is_dir else "l" if e.is_symlink else "-") + e.mode,
                str(e.size),
                e.modified.strftime("%Y-%m-%d %H:%M"),
                e.path if data.search is not None else e.name,
            ]
            for e in entries
        ]
        out(table(["MODE", "SIZE", "MODIFIED", "NAME"], rows))
        if data.entries is not None and data.entries.next_offset is not None:
            out(f"(more: --offset {data.entries.next_offset})", err=True)
        if data.search is not None and data.search.truncated:
            out("(more matches were left out: narrow the pattern or raise --limit)", err=True)
    elif data.content is not None:
        text = data.content.content
        if data.content.encoding == "base64":
            sys.stdout.buffer.write(base64.b64decode(text))
            sys.stdout.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    elif data.done is not None:
        extra = f" ({data.done.skipped} skipped)" if data.done.skipped else ""
        out(f"{data.done.path}: done{extra}")
    return 0


def _upload(api: Api, args: argparse.Namespace, base: str) -> int:
    local = Path(args.local)
    try:
        handle: BinaryIO = local.open("rb")
        size = local.stat().st_size
    except OSError as exc:
        raise OperatorError(f"{args.local}: {exc.strerror or exc}") from None
    meter = _Meter(f"upload {args.local}", size)

    def chunks() -> Iterator[bytes]:
        while chunk := handle.read(_CHUNK):
            meter.add(len(chunk))
            yield chunk

    with handle:
        response = api.request(
            "PUT",
            f"{base}/upload",
            params={"path": args.path},
            content=chunks(),
            headers={"Content-Length": str(size)},
            timeout=_TRANSFER_TIMEOUT,
        )
    meter.finish()
    raw = response.json()
    out(json.dumps(raw, indent=2) if args.json else f"{raw.get('path')}: {raw.get('size')} bytes")
    return 0


def _download(api: Api, args: argparse.Namespace, base: str) -> int:
    path = f"{base}/download"
    try:
        with api.client.stream(
            "GET", path, params={"path": args.path}, timeout=_TRANSFER_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise api.refusal("GET", path, response)
            length = response.headers.get("content-length")
            meter = _Meter(f"download {args.path}", int(length) if length else None)
            to_stdout = args.local == "-"
            sink: BinaryIO = sys.stdout.buffer if to_stdout else Path(args.local).open("wb")
            try:
                for chunk in response.iter_raw(_CHUNK):
                    sink.write(chunk)
                    meter.add(len(chunk))
            finally:
                if not to_stdout:
                    sink.close()
    except httpx.HTTPError as exc:
        raise OperatorError(f"the download broke: {type(exc).__name__} ({exc})") from None
    except OSError as exc:
        raise OperatorError(f"{args.local}: {exc.strerror or exc}") from None
    meter.finish()
    return 0


def run_files_verb(api: Api, args: argparse.Namespace) -> int:
    base = f"/api/v1/nodes/{args.node}/containers/{args.server}/files"
    verb = args.files_verb
    if verb == "upload":
        return _upload(api, args, base)
    if verb == "download":
        return _download(api, args, base)

    def get(suffix: str, **params: Any) -> Answer[CommandResult]:
        return api.fetch(CommandResult, "GET", f"{base}{suffix}", params=params)

    def post(suffix: str, body: dict[str, Any]) -> Answer[CommandResult]:
        return api.fetch(CommandResult, "POST", f"{base}/{suffix}", json=body)

    if verb == "ls" and args.long:
        answer = get("/detailed", path=args.path, offset=args.offset, limit=args.limit)
    elif verb == "ls":
        answer = get("", path=args.path)
    elif verb == "cat":
        answer = get("/content", path=args.path)
    elif verb == "search":
        answer = get("/search", pattern=args.pattern, path=args.path, limit=args.limit)
    elif verb == "write":
        if args.content is None:
            content = sys.stdin.read()
        elif args.content.startswith("@"):
            try:
                content = Path(args.content[1:]).read_text("utf-8")
            except OSError as exc:
                raise OperatorError(f"--content {args.content}: {exc.strerror or exc}") from None
        else:
            content = args.content
        answer = post("write", {"filename": args.path, "content": content})
    elif verb == "rm":
        answer = post("delete", {"root": "/", "files": list(args.paths)})
    elif verb == "mkdir":
        answer = post("create-folder", {"root": "/", "name": args.path})
    elif verb == "mv":
        answer = post("rename", {"from": args.source, "to": args.target})
    elif verb == "cp":
        body = {"source": args.source, "destination": args.target, "is_folder": args.recursive}
        answer = post("copy", body)
    elif verb == "chmod":
        answer = post("chmod", {"path": args.path, "mode": args.mode})
    elif verb == "compress":
        body = {"sources": list(args.sources), "output": args.output, "format": args.format}
        answer = post("compress", body)
    else:
        assert verb == "decompress"
        answer = post("decompress", {"root": args.root, "file": args.file})
    return _answer(args, answer)
