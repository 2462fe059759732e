"""A server's enforced disk quota: ``limits.disk``, ``GET /volumes/{id}/quota`` and
``POST /volumes/{id}/resize``, whose container commands
(``quota.get`` / ``quota.resize``) are in :mod:`lightd_shared.commands`.

Sizes in a spec are bytes or ``"512m"`` / ``"10g"`` (the units of ``limits.memory``: powers of
1024). A route's ``MB`` is a mebibyte (1024 * 1024 bytes), the ``m`` of ``limits.disk``.
The quota view answers lightd's four fields in whole MB, plus the exact byte counts beside them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from lightd_shared.base import Payload, Request

__all__ = [
    "MAX_DISK",
    "MIB",
    "MIN_DISK",
    "QuotaView",
    "ResizeRequest",
    "parse_disk",
]

MIB = 1024 * 1024
"""One MB as the quota routes count it."""

MIN_DISK = 8 * MIB
"""The smallest ``limits.disk``: mkfs.ext4 makes a filesystem of it with room for data (about
6.4 MB after the journal and the inode tables); smaller images are mostly metadata."""

MAX_DISK = 16 * 1024**4
"""The largest ``limits.disk`` (16 TiB): the largest file ext4 (the usual host filesystem the
image lives on) holds with 4 KiB blocks."""

_SIZE = re.compile(r"^(\d+)([bkmgt]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _bounded(amount: int, shown: object) -> int:
    if amount < MIN_DISK:
        raise ValueError(
            f"disk limit {shown!r} is below the minimum of 8m (an ext4 image smaller than "
            "that holds little but its own metadata)"
        )
    if amount > MAX_DISK:
        raise ValueError(f"disk limit {shown!r} is above the maximum of 16t")
    return amount


def parse_disk(value: int | str) -> int:
    """``"512m"``, ``"10g"`` or a byte count -> bytes, between :data:`MIN_DISK` and
    :data:`MAX_DISK`; raise ``ValueError`` naming the value otherwise."""
    if isinstance(value, bool):
        raise ValueError("disk must be a byte count or a size such as '512m'")
    if isinstance(value, int):
        return _bounded(value, value)
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(
            f"invalid disk limit {value!r}; write a byte count or a size such as '512m' or "
            "'10g' (units b, k, m, g, t)"
        )
    return _bounded(int(match.group(1)) * _UNITS[match.group(2).lower()], value)


class QuotaView(Payload):
    """``GET /volumes/{id}/quota``: the volume's filesystem as ``statvfs`` reports it.

    ``size_mb`` is what the filesystem holds (the image less ext4's own journal and tables),
    ``used_mb`` what its files take, ``available_mb`` what a write can still get;
    ``limit_mb`` the image size (``limits.disk``). The ``*_bytes`` fields are exact.
    """

    size_mb: int = Field(ge=0)
    used_mb: int = Field(ge=0)
    available_mb: int = Field(ge=0)
    percentage_used: float = Field(ge=0, le=100)
    limit_mb: int = Field(ge=0, description="The disk image's size (limits.disk) in MB")
    size_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    available_bytes: int = Field(ge=0)
    enforced: Literal[True] = True


class ResizeRequest(Request):
    """``POST /volumes/{id}/resize``: ``{"size": MB}``, the new ``limits.disk`` in MB."""

    size: int = Field(
        ge=MIN_DISK // MIB,
        le=MAX_DISK // MIB,
        description="The new disk limit in MB (1 MB = 1024 * 1024 bytes)",
    )
