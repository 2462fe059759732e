"""Figures that need the agent and the coordinator joined (issue 6): 2b and 5.

Until the pieces exist these rows say so plainly (value ``None``, ``met`` ``None``); they are
never replaced by a stand-in for the missing part.
"""

from __future__ import annotations

from bench.context import Run
from bench.report import Figure

__all__ = ["not_yet"]


def not_yet(figure: str, target: str, unit: str, why: str) -> Figure:
    return Figure(figure=figure, value=None, unit=unit, target=target, met=None, detail=why)


async def cluster_figures(run: Run) -> list[Figure]:
    return [
        not_yet(
            "5. Dispatch overhead: via coordinator minus straight to agent (p50)",
            "<= 3",
            "ms",
            "not measurable yet: agent POST /commands lands with issue 6",
        ),
    ]
