"""Plain-text tables for the command lines (``lightd``, ``lightd-coordinator``): one way to
render them.

``table`` aligns columns two spaces apart under upper-case headers, with no trailing spaces::

    ID      NAME  STATUS
    node-1  web   active

``fields`` aligns ``label  value`` pairs (one record, as ``lightd status`` prints it).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["fields", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``label  value`` lines, the values aligned after the longest label."""
    if not pairs:
        return ""
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label.ljust(width)}  {value}".rstrip() for label, value in pairs)
