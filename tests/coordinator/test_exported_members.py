"""``lightd_coordinator``'s public API, pinned (as httpx's ``tests/test_exported_members.py``)."""

from __future__ import annotations

from types import ModuleType

import pytest

import lightd_coordinator
from lightd_coordinator.config import ConfigError, Settings, default_yaml, load_settings
from lightd_coordinator.core import Coordinator
from lightd_coordinator.main import create_app
from lightd_coordinator.operator import OperatorError, run_operator

EXPORTED = {
    "ConfigError": ConfigError,
    "Coordinator": Coordinator,
    "OperatorError": OperatorError,
    "Settings": Settings,
    "create_app": create_app,
    "default_yaml": default_yaml,
    "load_settings": load_settings,
    "run_operator": run_operator,
}


def test_all_is_pinned() -> None:
    assert lightd_coordinator.__all__ == sorted([*EXPORTED, "__version__"])


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_each_name_is_the_defining_modules(name: str) -> None:
    assert getattr(lightd_coordinator, name) is EXPORTED[name]
    assert name in dir(lightd_coordinator)


def test_public_names_in_the_namespace_are_all_exported() -> None:
    public = {
        name
        for name, value in vars(lightd_coordinator).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public <= set(lightd_coordinator.__all__)
    assert isinstance(lightd_coordinator.__version__, str)
