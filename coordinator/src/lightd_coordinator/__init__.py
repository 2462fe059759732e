"""lightd-coordinator: the central node registry, command dispatcher and event stream."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lightd-coordinator")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
