"""The agent's footprint: the malloc arena cap of ``lightd run`` (``footprint.py``), and the
libraries only a feature in use may load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lightd_agent.footprint import HeapTrimmer, limit_malloc_arenas, malloc_trim
from tests.harness.wait import wait_until


def test_the_arena_cap_applies_on_glibc() -> None:
    assert limit_malloc_arenas() is True  # the project's machines run Debian (glibc)


def test_an_operators_malloc_arena_max_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


# Libraries an idle agent never needs: each is loaded only by the feature that uses it (a cron
# expression read, an S3 backup target, the first signed command). Loaded at start, they would
# sit in every agent's resident memory (croniter alone is about 2.3 MiB; jose brings
# cryptography, about 9 MiB).
_LAZY = ("croniter", "boto3", "botocore", "jose", "cryptography")


def test_building_the_agent_loads_no_feature_only_library(tmp_path: Path) -> None:
    script = f"""
import json, sys
from pathlib import Path
from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig
config = AgentConfig.model_validate(
    {{"storage": {{"base_path": {str(tmp_path)!r}}}, "authorization": {{"token": "t" * 32}}}}
)
create_app(config)
print(json.dumps(sorted(m for m in {_LAZY!r} if m in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_cron_expression_loads_croniter_when_first_read() -> None:
    script = """
import sys
from lightd_agent.schedules.cron import check_cron
assert "croniter" not in sys.modules
check_cron("0 4 * * *", "Europe/Berlin")
print("croniter" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_malloc_trim_is_there_on_glibc() -> None:
    assert malloc_trim() is not None  # True or False: whether it freed anything


def test_the_heap_trimmer_trims_until_stopped() -> None:
    trimmer = HeapTrimmer(interval=0.01)
    assert trimmer.start() is True
    try:
        wait_until(lambda: trimmer.trims >= 3, 10.0, what="three trims")
    finally:
        trimmer.stop()
    stopped_at = trimmer.trims
    assert trimmer._thread is not None and not trimmer._thread.is_alive()
    assert trimmer.trims == stopped_at  # no trim after stop
