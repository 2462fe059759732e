"""The ``lightd-coordinator`` command line (and its seed spelling, ``vendetta coordination``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightd_coordinator import __version__


def build_parser(prog: str = "lightd-coordinator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="lightd coordinator: node registry, command dispatch and events for agents.",
    )
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


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
    return main(rest)
