"""Fixtures for the deploy tests: the repository's own scripts, run as an operator runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "scripts" / "build-images"
WHEELS = REPO / "build" / "images" / "wheels"


def run_script(*argv: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one of the repository's scripts; fail the test with its output when it fails."""
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="session")
def agent_wheels() -> Path:
    """build/images/wheels for this host's Python (scripts/build-images --wheels-only)."""
    run_script(BUILD_IMAGES, "--wheels-only", timeout=900)
    assert list(WHEELS.glob("lightd_agent-*.whl")), f"no lightd_agent wheel in {WHEELS}"
    return WHEELS
