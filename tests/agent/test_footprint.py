"""The agent's footprint: the malloc arena cap of ``lightd run`` (``footprint.py``), and the
libraries only a feature in use may load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lightd_agent.footprint import limit_malloc_arenas


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
