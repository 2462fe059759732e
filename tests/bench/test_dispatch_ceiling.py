"""``bench.dispatch_ceiling`` measures what it says: every path answered, every number real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ceiling_sends_every_path_and_reports_cpu_per_request() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.dispatch_ceiling", "--rounds", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rounds"] == 40
    assert set(result["p50_ms"]) == {"straight", "proxy", "coordinator"}
    assert all(value > 0 for value in result["p50_ms"].values())
    # the coordinator and the proxy each served 40 requests: several 10 ms clock ticks each
    assert result["cpu_us_per_request"]["proxy"] > 0
    assert result["cpu_us_per_request"]["coordinator"] > 0
    assert "coordinator" in done.stdout and "added p50 ms" in done.stdout
