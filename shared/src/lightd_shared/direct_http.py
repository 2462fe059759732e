"""A hot path's requests sent straight through an ``httpx.AsyncClient``'s transport.

httpx's client layer costs about a quarter of a small request's CPU: it merges the URL and the
headers again, runs its auth and redirect flows, and builds a urllib request for every answer
to look for cookies. For a request that layer does not change (an absolute URL, the client's
fixed headers plus the request's own, no auth flow, no redirects followed, no proxy) it can be
skipped. :class:`DirectSender` builds the request the client would have built (``Host`` first,
then the client's headers in the client's order, then the request's, then ``Content-Length``)
and sends it through the same transport, so the connection pool, TLS and timeouts are
httpx's own.

It steps aside (:meth:`DirectSender.usable` is false) once the client holds a cookie: an
answer that sets one is handed to the client's jar, and from then on the caller sends through
the client, which sends the cookie back as before. The caller decides the rest: use it only
for a client without ``auth``, without event hooks, with ``follow_redirects=False`` and whose
proxies (if any) do not apply, since a client given its transport explicitly mounts none from
the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["DirectSender"]

# The logger httpx's client writes its per-request line to; the direct path writes the same.
_HTTPX_LOG = logging.getLogger("httpx")


class DirectSender:
    """Send through ``transport``, the transport ``client`` was built with."""

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport) -> None:
        self.client = client
        self._transport = transport

    def usable(self) -> bool:
        """False once the client holds a cookie (then the client layer must send)."""
        return not self.client.cookies

    async def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: Mapping[str, str],
        timeout: dict[str, Any],
        content: bytes | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """The request ``client.request(method, url, ...)`` would send; the answer read.

        ``timeout``: ``httpx.Timeout(...).as_dict()``, as the client puts it in the
        request's extensions. Raises what the transport raises (``httpx.TransportError``s).
        """
        own = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
        names = {name.lower() for name, _ in own}
        # as the client merges them: a request's header replaces the client's of that name
        # and goes after the client's others
        merged = [pair for pair in self.client.headers.raw if pair[0].lower() not in names]
        request = httpx.Request(
            method,
            url,
            content=content,
            json=json,
            headers=merged + own,
            extensions={"timeout": timeout},
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        if "set-cookie" in response.headers:
            self.client.cookies.extract_cookies(response)
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                method,
                url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response
