"""The operators' dashboard: static HTML, CSS and JavaScript served at ``/ui/``.

The files hold no data (everything comes from the API with the operator's token), need no
build step and fetch nothing from elsewhere; they ship inside this package.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["ASSETS", "asset"]

ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""Every file the dashboard serves, and its media type (anything else is a 404)."""


def asset(name: str) -> Traversable:
    return files(__name__).joinpath("static", name)
