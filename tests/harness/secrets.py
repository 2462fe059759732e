"""The one place tests register their secrets, and the check that none of them was logged.

Every token, JWT secret or key a test hands to a program is registered here: the constants of
the test helpers by :func:`register_known` (called once by ``tests/conftest.py``), anything a
test makes on the fly with :func:`register`. After the whole session the leak check
(:mod:`tests.harness.leakcheck`) reads every log file the tests produced and every output
pytest captured, and fails the run if a registered secret appears in any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Leak", "find_leaks", "register", "register_known", "registered"]

MIN_LENGTH = 8
"""Shorter values are not registered: they would match by chance (and are no secrets)."""

_lock = threading.Lock()
_secrets: set[str] = set()


def register(*secrets: str | None) -> None:
    """Add secrets (``None`` and short values are ignored)."""
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= MIN_LENGTH)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def register_known() -> None:
    """The secrets of the shared test helpers and the test modules' constants."""
    from lightd_coordinator.config import SAMPLE_AUTH_TOKEN, SAMPLE_JWT_SECRET
    from tests.agent.conftest import TOKEN as AGENT_API_TOKEN
    from tests.coordinator import harness as coordinator_harness
    from tests.integration import fleet
    from tests.remote.agent import API_TOKEN as REMOTE_AGENT_API_TOKEN
    from tests.remote.conftest import REMOTE_TOKEN

    register(
        SAMPLE_AUTH_TOKEN,
        SAMPLE_JWT_SECRET,
        AGENT_API_TOKEN,
        coordinator_harness.SECRET,
        coordinator_harness.STATIC,
        fleet.STATIC,
        fleet.JWT_SECRET,
        fleet.AGENT_TOKEN,
        fleet.API_TOKEN,
        REMOTE_AGENT_API_TOKEN,
        REMOTE_TOKEN,
        "lightd_5f0e1d2c3b4a59687766554433221100",  # tests/coordinator: agent token
        "unit-test-secret-0123456789",  # tests/coordinator/test_security.py
    )


@dataclass(frozen=True)
class Leak:
    where: str  # a file path, or "captured <section> of <test id>"
    secret: str
    line: str

    def __str__(self) -> str:
        shown = self.secret[:6] + "…"
        return f"{self.where}: secret {shown} in: {self.line.replace(self.secret, '<SECRET>')}"


def is_log_file(path: Path) -> bool:
    name = path.name
    return name.endswith((".log", ".jsonl")) or ".log." in name


def _scan(where: str, text: str, secrets: frozenset[str]) -> list[Leak]:
    leaks = []
    for secret in secrets:
        if secret in text:
            line = next(line for line in text.splitlines() if secret in line)
            leaks.append(Leak(where, secret, line[:300]))
    return leaks


def find_leaks(
    log_dirs: Iterable[Path],
    captured: Iterable[tuple[str, str]],
    secrets: frozenset[str],
) -> list[Leak]:
    """Every registered secret found in a log file under ``log_dirs`` or a captured output."""
    leaks: list[Leak] = []
    if not secrets:
        return leaks
    for root in log_dirs:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and is_log_file(path):
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                leaks += _scan(str(path), text, secrets)
    for where, text in captured:
        leaks += _scan(where, text, secrets)
    return leaks
