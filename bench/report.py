"""Figures, the machine they ran on, and the two outputs: a Markdown table and a JSON list.

A :class:`Figure` is one row: a value measured against a baseline in the same run, the target
beside it, and whether it was met (``None`` when it could not be measured, never a silent pass).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

__all__ = ["Figure", "Machine", "machine_info", "markdown", "to_json"]


@dataclass
class Figure:
    """One row of the table. ``value`` is ``None`` when the figure could not be measured."""

    figure: str
    value: float | None
    unit: str
    target: str
    met: bool | None
    size: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def verdict(self) -> str:
        if self.met is None:
            return "NOT MEASURED" if self.value is None else "n/a"
        return "met" if self.met else "**MISSED**"

    def shown(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "—"
        if abs(self.value) >= 100:
            return f"{self.value:,.0f} {self.unit}".strip()
        return f"{self.value:.2f} {self.unit}".strip()

    def record(self) -> dict[str, Any]:
        """The JSON form: ``{figure, value, unit, target, met}`` plus size and detail."""
        value = self.value
        if value is not None and math.isnan(value):
            value = None
        return {
            "figure": self.figure,
            "value": value,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "size": self.size,
            "detail": self.detail,
        }


@dataclass
class Machine:
    cores: int
    memory_gib: float
    load_at_start: tuple[float, float, float]
    python: str
    platform: str
    docker_engine: str
    versions: dict[str, str]
    commit: str
    started: str
    mode: str

    def lines(self) -> list[str]:
        load = ", ".join(f"{x:.2f}" for x in self.load_at_start)
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return [
            f"- Run: {self.started} ({self.mode}), commit `{self.commit}`",
            f"- Machine: {self.cores} cores, {self.memory_gib:.1f} GiB, {self.platform}",
            f"- Load average at start (1, 5, 15 min): {load}",
            f"- Python {self.python}; Docker engine {self.docker_engine}",
            f"- Versions: {versions}",
        ]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(mode: str, docker_engine: str) -> Machine:
    """Cores, memory, load average and versions, read when the run starts."""
    versions: dict[str, str] = {}
    for dist in (
        "lightd-agent",
        "lightd-coordinator",
        "lightd-shared",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "pydantic",
        "docker",
        "sse-starlette",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return Machine(
        cores=os.cpu_count() or 0,
        memory_gib=psutil.virtual_memory().total / 2**30,
        load_at_start=os.getloadavg(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        docker_engine=docker_engine,
        versions=versions,
        commit=_commit(),
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        mode=mode,
    )


def markdown(figures: list[Figure], machine: Machine) -> str:
    """The table people read: every figure with its target and a plain verdict."""
    rows = [
        "| Figure | Size | Value | Target | Verdict | Detail |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        detail = f.detail.replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {f.figure} | {f.size} | {f.shown()} | {f.target} | {f.verdict()} | {detail} |"
        )
    missed = [f.figure for f in figures if f.met is False]
    unmeasured = [f.figure for f in figures if f.met is None and f.value is None]
    tail = []
    if missed:
        tail.append("Missed targets: " + "; ".join(missed) + ".")
    if unmeasured:
        tail.append("Not measured: " + "; ".join(unmeasured) + ".")
    if not missed and not unmeasured:
        tail.append("Every target was met.")
    return "\n".join([*machine.lines(), "", *rows, "", *tail]) + "\n"


def to_json(figures: list[Figure]) -> str:
    return json.dumps([f.record() for f in figures], indent=2)


def full_record(figures: list[Figure], machine: Machine) -> str:
    """Everything in one object (machine, figures, and each figure's raw distribution)."""
    return json.dumps(
        {
            "machine": asdict(machine),
            "figures": [{**f.record(), "extra": f.extra} for f in figures],
        },
        indent=2,
        default=str,
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
