"""lightd-coordinator: the central node registry, command dispatcher and event stream.

The public API (:data:`__all__`, pinned by ``tests/coordinator/test_exported_members.py``)::

    create_app(settings)   the FastAPI application (lightd_coordinator.main)
    Coordinator            the one typed object the routes reach (lightd_coordinator.core)
    Settings, load_settings, default_yaml, ConfigError   configuration (lightd_coordinator.config)
    OperatorError, run_operator   the operator verbs (lightd_coordinator.operator)

Names are imported on first use: ``lightd-coordinator token`` does not load the web stack. (The
command line is ``lightd_coordinator.cli:main``; ``lightd_coordinator.main`` is the module that
builds the app.)
"""

import importlib as _importlib
import typing as _typing
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

if _typing.TYPE_CHECKING:
    from lightd_coordinator.config import ConfigError, Settings, default_yaml, load_settings
    from lightd_coordinator.core import Coordinator
    from lightd_coordinator.main import create_app
    from lightd_coordinator.operator import OperatorError, run_operator

try:
    __version__ = _version("lightd-coordinator")
except _PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

_EXPORTS: dict[str, str] = {
    "ConfigError": "config",
    "Coordinator": "core",
    "OperatorError": "operator",
    "Settings": "config",
    "create_app": "main",
    "default_yaml": "config",
    "load_settings": "config",
    "run_operator": "operator",
}
"""Each exported name and the module (``lightd_coordinator.<module>``) that defines it."""

__all__ = [
    "ConfigError",
    "Coordinator",
    "OperatorError",
    "Settings",
    "__version__",
    "create_app",
    "default_yaml",
    "load_settings",
    "run_operator",
]


def __getattr__(name: str) -> _typing.Any:
    """Import the module that defines ``name`` on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightd_coordinator' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"lightd_coordinator.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
