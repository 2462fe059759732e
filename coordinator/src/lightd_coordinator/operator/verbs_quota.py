"""``lightd-coordinator containers quota NODE SERVER [--resize MB]``: a server's disk quota.

Without ``--resize`` it shows the quota (``GET .../containers/{server}/quota``); with it, it
resizes the disk to MB (``POST .../containers/{server}/resize``) and shows the quota after::

    SERVER  SIZE_MB  USED_MB  AVAILABLE_MB  USED%  LIMIT_MB
    mc-1    17       10       7             58.9   20
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from lightd_coordinator.operator.client import Answer, Api
from lightd_coordinator.operator.rendering import out
from lightd_shared.commands import CommandResult
from lightd_shared.quota import QuotaView
from lightd_shared.tables import table

__all__ = ["add_quota_verb", "run_quota"]


def add_quota_verb(
    c_sub: Any, verb: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """``containers quota NODE SERVER [--resize MB]`` on the ``containers`` sub-parsers."""
    quota = verb(
        c_sub.add_parser(
            "quota",
            help="a server's disk quota (limits.disk); --resize MB to change it",
            description="Show the server's enforced disk quota, or with --resize MB grow it "
            "(a running server only where the agent grows a mounted filesystem) or shrink it "
            "(stopped, and only when its data fits).",
        )
    )
    quota.add_argument("node")
    quota.add_argument("server")
    quota.add_argument("--resize", type=int, metavar="MB", help="the new disk limit in MB")


def quota_table(server: str, view: QuotaView) -> str:
    return table(
        ["SERVER", "SIZE_MB", "USED_MB", "AVAILABLE_MB", "USED%", "LIMIT_MB"],
        [
            [
                server,
                str(view.size_mb),
                str(view.used_mb),
                str(view.available_mb),
                f"{view.percentage_used:.1f}",
                str(view.limit_mb),
            ]
        ],
    )


def run_quota(api: Api, args: argparse.Namespace, base: str) -> int:
    answer: Answer[CommandResult]
    if args.resize is None:
        answer = api.fetch(CommandResult, "GET", f"{base}/{args.server}/quota")
    else:
        body = {"size": args.resize}
        answer = api.fetch(CommandResult, "POST", f"{base}/{args.server}/resize", json=body)
    result = answer.model
    if args.json:
        out(json.dumps(answer.raw, indent=2))
        return 0 if result.status == "success" else 1
    if result.status != "success":
        out(f"{result.status}: {result.output}", err=True)
        return 1
    if isinstance(result.data, QuotaView):
        out(quota_table(args.server, result.data))
    else:
        out(result.output)
    return 0
