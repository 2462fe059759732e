"""The benchmark harness runs end to end at a tiny size and reports every figure.

No timing is asserted (the machine is shared and has two cores): only that the harness runs
the real agent, coordinator and Docker work, writes a JSON list of
``{figure, value, unit, target, met}`` with every figure in it, and leaves nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("1.", "2a.", "2b.", "3a.", "3b.", "4.", "5.", "6.", "7a.", "7b.", "8a.", "8b.", "9.")
FIGURES += ("10a.", "10b.", "10c.", "10d.", "11.", "12.")


def test_bench_tiny_run_reports_every_figure(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient
) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert isinstance(figures, list)
    for figure in figures:
        assert {"figure", "value", "unit", "target", "met"} <= set(figure)
        assert isinstance(figure["figure"], str) and isinstance(figure["target"], str)
        assert figure["value"] is None or isinstance(figure["value"], int | float)
        assert figure["met"] in (True, False, None)
        assert "FAILED" not in figure.get("detail", "")
    names = [f["figure"] for f in figures]
    for prefix in FIGURES:
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    measured = [f for f in figures if f["value"] is not None]
    assert all(f["met"] is not None for f in measured)
    # The table went to stdout with every figure and its target beside it.
    for figure in figures:
        assert figure["figure"] in done.stdout
    assert "Load average at start" in done.stdout
    leftovers = docker_client.containers.list(all=True, filters={"label": "lightd.bench"})
    assert not leftovers, [c.name for c in leftovers]
