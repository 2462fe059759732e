"""Which browser origins may read the API (``websocket.origins``), and saying so when one may not.

An entry is ``*`` (every origin), an exact origin (``https://panel.example.com``,
``http://localhost:8080``) or an origin with any port (``http://localhost:*``: the local
cluster's own pages, whatever port they are served from). An origin is a scheme, a host and an
optional port; a path, a query or a trailing ``/`` never matches what a browser sends, so
:func:`check_origin_pattern` refuses them when the config is read.

:class:`OriginCORSMiddleware` is Starlette's CORS middleware deciding with those entries, and
logging a refusal once per origin: the browser only says "blocked by CORS policy", so the
coordinator's log names the origin and the setting that would let it in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ORIGINS_SETTING", "OriginCORSMiddleware", "OriginMatcher", "check_origin_pattern"]

log = logging.getLogger(__name__)

ORIGINS_SETTING = "websocket.origins (LIGHTD_COORD_WEBSOCKET__ORIGINS)"

_HOST = r"(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
_PATTERN = re.compile(
    rf"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}|\*))?$"
)
# How many distinct refused origins are logged at warning; later ones go to debug, so a client
# inventing origins cannot flood the log.
_LOGGED_LIMIT = 256


def check_origin_pattern(value: str) -> str:
    """``value`` as an origin entry (lower-cased), or ``ValueError`` saying what is wrong."""
    entry = value.strip().lower()
    if entry == "*":
        return entry
    match = _PATTERN.fullmatch(entry)
    if match is None:
        hint = ""
        parts = urlsplit(entry)
        if parts.scheme and parts.netloc and (parts.path or parts.query or parts.fragment):
            hint = f": an origin has no path, write {f'{parts.scheme}://{parts.netloc}'!r}"
        raise ValueError(
            f"{value!r} is not an origin{hint} (use '*', 'https://panel.example.com', "
            "'http://localhost:8080' or 'http://localhost:*' for any port)"
        )
    port = match["port"]
    if port is not None and port != "*" and not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: port {port} is out of range")
    return entry


class OriginMatcher:
    """Matches an ``Origin`` header against the configured entries."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = [check_origin_pattern(entry) for entry in entries]
        self.allow_all = "*" in self.entries
        self._exact = {entry for entry in self.entries if not entry.endswith(":*")}
        # "http://localhost:*" -> "http://localhost" with or without any port
        self._any_port = {entry[:-2] for entry in self.entries if entry.endswith(":*")}

    def matches(self, origin: str) -> bool:
        if self.allow_all:
            return True
        origin = origin.lower()
        if origin in self._exact:
            return True
        if not self._any_port:
            return False
        base, sep, port = origin.rpartition(":")
        if sep and port.isdigit() and base in self._any_port:
            return True
        return origin in self._any_port


def _same_origin(origin: str, host: str | None) -> bool:
    """A page of the coordinator itself (its /docs) sends its own origin: not a CORS matter."""
    return host is not None and urlsplit(origin).netloc == host.lower()


class OriginCORSMiddleware(CORSMiddleware):
    """CORS with :class:`OriginMatcher` entries; a refused cross-origin request is logged."""

    def __init__(
        self,
        app: ASGIApp,
        /,
        *,
        origins: Sequence[str],
        allow_credentials: bool = False,
        allow_methods: Sequence[str] = ("GET",),
        allow_headers: Sequence[str] = (),
        expose_headers: Sequence[str] = (),
    ) -> None:
        self.matcher = OriginMatcher(origins)
        super().__init__(
            app,
            allow_origins=self.matcher.entries,
            allow_credentials=allow_credentials,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            expose_headers=expose_headers,
        )
        self._logged: set[str] = set()

    def is_allowed_origin(self, origin: str) -> bool:
        return self.matcher.matches(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if (
                origin is not None
                and not self.matcher.matches(origin)
                and not _same_origin(origin, headers.get("host"))
            ):
                self._refused(origin, scope.get("path", ""))
        await super().__call__(scope, receive, send)

    def _refused(self, origin: str, path: str) -> None:
        shown = origin[:200]
        level = logging.DEBUG
        if shown not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(shown)
            level = logging.WARNING
        log.log(
            level,
            "refused browser origin %r (request to %s): browsers will block the answer; "
            "to let pages from it in, add it to %s, now %s",
            shown,
            path[:200],
            ORIGINS_SETTING,
            self.matcher.entries,
        )
