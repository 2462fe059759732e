"""Small constrained types shared by several schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

__all__ = ["Identifier", "Labels", "Port"]

Port = Annotated[int, Field(ge=1, le=65535, description="A TCP/UDP port, 1-65535")]

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    Field(description="Letters, digits, '.', '_' and '-', starting with a letter or digit"),
]
"""Node ids, server ids: safe in URLs, Docker labels and file names."""

Labels = dict[str, str]
