"""After the README's commands the working tree stays clean: what the scripts make is ignored.

``scripts/install`` (``.venv/``, and ``.tools/`` where uv is not on PATH), ``scripts/up`` and
``scripts/down`` (``.env``, ``.lightd/``, ``build/images/``), ``scripts/build-test-images``,
``scripts/test`` (the tools' caches) and ``python -m bench`` (``bench/results/``) each write into
the checkout; one ``git add -A`` must never pick any of it up (a venv, or ``.env``'s secrets).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.conftest import REPO

MADE_BY_THE_SCRIPTS = [
    ".venv/bin/python",
    ".tools/bin/uv",
    ".tools/pip.log",
    ".env",
    ".env.new",
    ".lightd/cluster/agent-1/state/dispatch.key",
    ".lightd/agent.json",
    "build/images/wheels/lightd_agent-0.1.0-py3-none-any.whl",
    "build/images/context/docker-cli/docker",
    "build/images/debootstrap.log",
    "build/images/.lock",
    "tests/images/busybox/busybox",
    "bench/results/20261201T000000Z.md",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/0.8.0/x",
    ".hypothesis/examples/x",
    "agent/src/lightd_agent/__pycache__/cli.cpython-311.pyc",
    "shared/src/lightd_shared.egg-info/PKG-INFO",
]


@pytest.mark.parametrize("path", MADE_BY_THE_SCRIPTS)
def test_what_the_scripts_make_is_ignored(path: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", path],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"{path} is not ignored: add it to .gitignore"


def test_the_ignore_rules_hide_no_tracked_file() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--ignored", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert tracked.stdout.split() == []  # a source file matching an ignore rule would vanish
