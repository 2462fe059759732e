"""``bench.register_wrk`` measures what it says: real registrations, each a new node, real CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wrk_registers_new_nodes_on_both_registries_and_reports_cpu() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.register_wrk", "--seconds", "1", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])["rounds"]
    assert [row["registry"] for row in rows] == ["memory", "redis"]
    for row in rows:
        # the aid itself checked that the coordinator stored exactly this many new nodes
        assert row["registrations"] > 50, row
        assert row["rate"] > 0 and row["server_us_per_registration"] > 0, row
        assert 0 < row["server_cores"] <= 1.5, row  # one uvicorn process: one core at most
    assert "registrations" in done.stdout and "us each" in done.stdout
