"""Reading Docker's raw stats: the parts :class:`~lightd_shared.containers.ContainerStats` adds."""

from __future__ import annotations

from typing import Any

__all__ = ["block_io"]


def block_io(raw: dict[str, Any]) -> tuple[int, int]:
    """Bytes read and written by the container's block devices (cgroups v1 and v2).

    Docker reports them in ``blkio_stats.io_service_bytes_recursive`` as ``{"op", "value"}``
    entries, ``Read``/``Write`` on cgroups v1 and ``read``/``write`` on v2 (or ``null``).
    """
    entries = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = written = 0
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        op = str(entry.get("op", "")).lower()
        value = entry.get("value", 0)
        if not isinstance(value, int):
            continue
        if op == "read":
            read += value
        elif op == "write":
            written += value
    return read, written
