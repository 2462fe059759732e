"""Small constrained types shared by several schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

__all__ = ["MAX_LABELS", "Identifier", "LabelKey", "LabelValue", "Labels", "Port", "ShortText"]

Port = Annotated[int, Field(ge=1, le=65535, description="A TCP/UDP port, 1-65535")]

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    Field(description="Letters, digits, '.', '_' and '-', starting with a letter or digit"),
]
"""Node ids, server ids: safe in URLs, Docker labels and file names."""

ShortText = Annotated[str, StringConstraints(max_length=255)]
"""A name, provider, version or user: at most 255 characters."""

MAX_LABELS = 256
"""Most labels on one node, server or selector."""

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=253)]
LabelValue = Annotated[str, StringConstraints(max_length=4096)]

Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=MAX_LABELS, description="At most 256 labels; keys 1-253, values 0-4096 chars"),
]
