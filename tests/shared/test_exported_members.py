"""``lightd_shared``'s public API: every module's ``__all__``, exported from the package too.

As httpx's ``tests/test_exported_members.py``: a name added to or dropped from the API is a
visible change of this test's expectations, never an accident.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import lightd_shared

MODULES = [
    "activity",
    "auth",
    "backups",
    "base",
    "bodylimit",
    "commands",
    "console",
    "containers",
    "direct_http",
    "dispatch",
    "durations",
    "events",
    "files",
    "logformat",
    "monitoring",
    "nodes",
    "openapi",
    "pacing",
    "quota",
    "ratelimit",
    "remote",
    "routing",
    "schedules",
    "services",
    "stats",
    "tables",
    "timestamps",
    "tls",
    "tokens",
    "types",
    "wire",
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"lightd_shared.{name}")


def test_every_module_is_known_and_declares_its_exports() -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(lightd_shared.__path__))
    assert found == MODULES, "a module was added or removed: list it here and export its names"
    for name in MODULES:
        module = _module(name)
        assert isinstance(module.__all__, list), name
        assert len(set(module.__all__)) == len(module.__all__), name
        for member in module.__all__:
            assert hasattr(module, member), f"lightd_shared.{name}.__all__ names {member}"


def test_the_package_exports_every_modules_names() -> None:
    expected = {"__version__"} | {m for name in MODULES for m in _module(name).__all__}
    assert sorted(lightd_shared.__all__) == sorted(expected)
    assert len(set(lightd_shared.__all__)) == len(lightd_shared.__all__)
    for name in MODULES:
        for member in _module(name).__all__:
            assert getattr(lightd_shared, member) is getattr(_module(name), member), member
    assert set(lightd_shared.__all__) <= set(dir(lightd_shared))


def test_public_names_in_the_namespace_are_all_exported() -> None:
    public = {
        name
        for name, value in vars(lightd_shared).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public <= set(lightd_shared.__all__)
    try:
        lightd_shared.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
