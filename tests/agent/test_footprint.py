"""The malloc arena cap of ``lightd run`` (``footprint.py``)."""

from __future__ import annotations

import pytest

from lightd_agent.footprint import limit_malloc_arenas


def test_the_arena_cap_applies_on_glibc() -> None:
    assert limit_malloc_arenas() is True  # the project's machines run Debian (glibc)


def test_an_operators_malloc_arena_max_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False
