"""``lightd-coordinator containers console NODE SERVER``: a server's console in a terminal.

It tails the server's output (the coordinator's relayed log follow,
``GET .../logs?follow=true``, starting with ``--tail`` lines) on stdout, and sends each line
typed on stdin as one console command (``POST .../console``). Dropped output is shown where it
was dropped (``[lightd: N lines dropped]``); a command the node refuses (the server is not
running, a control character) is said on stderr and the console goes on. It ends cleanly, exit
0, at the end of stdin (Ctrl-D) or on Ctrl-C; when the output stream ends (the server stopped)
it says so on stderr and ends with exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import threading
from typing import IO, Any

import httpx

from lightd_coordinator.operator.client import Api, OperatorError
from lightd_coordinator.operator.rendering import out
from lightd_shared.commands import CommandResult
from lightd_shared.console import dropped_text

__all__ = ["console_verb"]

_POLL = 0.2
"""Seconds between looks at the output stream while waiting for a typed line."""


def _tail(api: Api, path: str, params: dict[str, str], ended: threading.Event) -> Any:
    """Open the follow (its status read, so a refusal is an error at once), then print it
    in a thread; ``ended`` is set when the stream ends."""
    opened = threading.Event()
    failure: list[OperatorError] = []

    def read() -> None:
        try:
            with api.client.stream(
                "GET", path, params=params, timeout=httpx.Timeout(10, read=None)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    failure.append(api.refusal("GET", path, response))
                    return
                opened.set()
                event, data = "", []
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif line == "" and event:
                        text = "\n".join(data)
                        if event == "log":
                            out(text)
                        elif event == "skipped":
                            out(dropped_text(int(json.loads(text).get("lines", 0))))
                        elif event == "end":
                            return
                        event, data = "", []
        except httpx.HTTPError as exc:
            failure.append(OperatorError(f"the console's output broke: {type(exc).__name__}"))
        finally:
            opened.set()
            ended.set()

    thread = threading.Thread(target=read, name="console-output", daemon=True)
    thread.start()
    opened.wait()
    if failure:
        raise failure[0]
    return thread


def _typed_lines(stdin: IO[str], ended: threading.Event) -> Any:
    """Lines typed on stdin (without their newline), until its end or the output's end.

    Read from the descriptor itself (not the text buffer): a buffered line would not wake
    ``select``.
    """
    fd = stdin.fileno()
    pending = b""
    while not ended.is_set():
        ready, _, _ = select.select([fd], [], [], _POLL)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if pending:
                yield pending.decode("utf-8", "replace").removesuffix("\r")
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").removesuffix("\r")


def console_verb(api: Api, args: argparse.Namespace) -> int:
    base = f"/api/v1/nodes/{args.node}/containers/{args.server}"
    params = {"follow": "true"}
    if args.tail is not None:
        params["tail"] = str(args.tail)
    ended = threading.Event()
    try:
        _tail(api, f"{base}/logs", params, ended)
        out(
            f"console of {args.server} on {args.node}: type a line to send it; Ctrl-D ends",
            err=True,
        )
        for line in _typed_lines(sys.stdin, ended):
            try:
                result = api.fetch(
                    CommandResult, "POST", f"{base}/console", json={"command": line}
                ).model
            except OperatorError as exc:
                out(f"not sent: {exc}", err=True)
                continue
            if result.status != "success":
                out(f"not sent: {result.output}", err=True)
    except KeyboardInterrupt:
        return 0
    if ended.is_set():
        out(f"the output of {args.server} ended (the server stopped or was removed)", err=True)
        return 1
    return 0
