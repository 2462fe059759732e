"""A server's console and its install logs: the bodies of the agent's console routes.

- ``POST /containers/{id}/console`` takes :class:`ConsoleInput` ``{"command": "say hello"}``
  and writes ``command + "\\n"`` to the server's stdin; it answers :class:`ConsoleSent`.
- The live console is the log follow (``?follow=true``): ``event: log`` per line, and
  ``event: dropped`` with :class:`DroppedLines` ``{"lines": N}`` when the agent's throttle
  dropped lines (:func:`dropped_text` is how a person is shown it).
- ``GET /containers/{id}/install-log?which=install|reinstall`` answers the kept output of the
  server's last install or reinstall (:data:`InstallLogKind`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from lightd_shared.base import Payload, Request

__all__ = [
    "INSTALL_LOG_KINDS",
    "MAX_CONSOLE_COMMAND",
    "ConsoleInput",
    "ConsoleLine",
    "ConsoleSent",
    "DroppedLines",
    "InstallLogKind",
    "check_console_line",
    "dropped_text",
]

MAX_CONSOLE_COMMAND = 4096
"""Characters one console command may hold (a game server's command line is far shorter)."""

InstallLogKind = Literal["install", "reinstall"]
INSTALL_LOG_KINDS: tuple[str, ...] = ("install", "reinstall")


def check_console_line(value: str) -> str:
    """Refuse what would not be one line on the server's stdin: a newline, or any other
    control character (a tab is fine)."""
    for position, char in enumerate(value):
        code = ord(char)
        if (code < 0x20 and char != "\t") or code == 0x7F:
            what = "a newline" if char in "\r\n" else "a control character"
            raise ValueError(
                f"command holds {what} (U+{code:04X} at position {position}); a console "
                "command is one line of text: send one request per line"
            )
    return value


ConsoleLine = Annotated[
    str,
    Field(max_length=MAX_CONSOLE_COMMAND, description="One line, without its newline"),
    AfterValidator(check_console_line),
]


class ConsoleInput(Request):
    """``POST /containers/{id}/console``: one line for the server's stdin (``""``: just Enter)."""

    command: ConsoleLine


class ConsoleSent(Payload):
    """The answer: the line was written to the server's stdin (``bytes``, newline included)."""

    id: str
    bytes: int


class DroppedLines(Payload):
    """``event: dropped`` of a follow: the throttle dropped ``lines`` lines of output here."""

    lines: int = Field(ge=1)


def dropped_text(lines: int) -> str:
    """The marker a person sees where lines were dropped."""
    return f"[lightd: {lines} lines dropped]"
