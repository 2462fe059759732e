"""HTTP client for the remote management server, exactly as seed 000 describes the calls.

Every call carries ``Authorization: Bearer <remote.token>``; calls with a body also carry
``Content-Type: application/json``; calls to the coordinator's remote endpoint also carry
``X-Lightd-Node-Proof`` (see :mod:`.proof`: never to any other remote). Paths are appended to
``remote.url`` as given (:meth:`RemoteSettings.endpoint`). Each call has one overall deadline
of ``remote.timeout`` (httpx's own timeouts are per phase, so a slow-dripping answer could
otherwise outlive it).

Answers are returned whatever their status: deciding what a 401 or a 503 means is the caller's
job. Only failures to get an answer are raised::

    RemoteError
     ├── RemoteTimeout      no complete answer within remote.timeout
     └── RemoteUnreachable  connection refused, DNS failure, reset, ...

The token is never logged or put in an exception message, and neither is a password in the
URL (``https://user:pass@host/api`` appears as ``https://***@host/api``).

``alternates`` (the coordinator's other replicas, same path): when the url in use gives no
answer, or answers 502/503/504, the same request goes to the next one at once, and the client
stays with the one that answered. Safe for updates: replicas share one fleet and drop a
repeated ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx

from lightd_agent import __version__
from lightd_agent.tls import outbound_verify
from lightd_shared.direct_http import DirectSender
from lightd_shared.dispatch import NODE_PROOF_HEADER
from lightd_shared.durations import format_duration
from lightd_shared.remote import (
    ConfigDocument,
    RemoteSettings,
    strip_userinfo,
    url_userinfo,
)

__all__ = ["RemoteClient", "RemoteError", "RemoteTimeout", "RemoteUnreachable"]


class RemoteError(Exception):
    """No answer from the remote."""


class RemoteTimeout(RemoteError):
    """The remote did not answer within ``remote.timeout``."""


class RemoteUnreachable(RemoteError):
    """The connection to the remote failed."""


class RemoteClient:
    """One ``httpx.AsyncClient`` bound to one set of remote settings."""

    def __init__(
        self,
        settings: RemoteSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        node_proof: Callable[[], str] | None = None,
        alternates: list[str] | None = None,
    ) -> None:
        """``node_proof``: sign ``X-Lightd-Node-Proof`` for every request (coordinator only);
        ``alternates``: more urls serving the same remote, to fail over to in order."""
        if settings.url is None or settings.token is None:
            raise ValueError("remote sync needs remote.url and remote.token")
        self.settings = settings
        self._node_proof = node_proof
        self._timeout = settings.timeout.total_seconds()
        self._bases = [str(settings.url), *(alternates or [])]
        self._current = 0
        # Each (url, path)'s request URL, parsed once: the text for messages, the parsed URL
        # for httpx (which would otherwise parse the text again on every request).
        self._urls: dict[tuple[str, str], tuple[str, httpx.URL]] = {}
        # A user:password in the URL is sent as httpx always sent it (Basic auth), but taken
        # out of the request URL: httpx logs that URL on every request.
        base = httpx.URL(str(settings.url))
        self._auth = httpx.BasicAuth(base.username, base.password) if url_userinfo(base) else None
        self._headers = {
            "Authorization": f"Bearer {settings.token}",
            "User-Agent": f"lightd/{__version__}",
            "Accept": "application/json",
        }
        self._transport = transport
        # The direct path (lightd_shared.direct_http) skips httpx's client layer, about a
        # quarter of an update's CPU on the loop: taken only where that layer adds nothing to
        # the request: no Basic auth from the URL, and no proxy from the environment (a client
        # given a transport never mounts one, so with an injected transport there is none).
        self._direct = self._auth is None and (
            transport is not None or not urllib.request.getproxies()
        )
        self._timeout_extension = httpx.Timeout(self._timeout).as_dict()
        self._direct_senders: dict[httpx.AsyncClient, DirectSender] = {}
        # One TLS context (server.tls.ca_bundle's, or the default) for all the clients below.
        verify = outbound_verify()
        self._ssl: ssl.SSLContext | None = None
        if transport is None:
            self._ssl = httpx.create_ssl_context(verify=verify)
        self._http = self._new_http()
        # One client per update in flight, each with its own kept-alive connection, idle ones
        # reused: httpx's pool looks at every pooled connection (a syscall for each idle one)
        # on every request and every response's close, so one pool under twenty servers'
        # concurrent updates cost about twenty times more per update than the one connection
        # of a serial sender.
        self._update_clients: list[httpx.AsyncClient] = []
        self._idle_update_clients: list[httpx.AsyncClient] = []

    def _new_http(self) -> httpx.AsyncClient:
        transport = self._transport
        if self._direct and transport is None:
            # The transport the client would have made itself (same TLS context, limits and
            # HTTP/1.1), made here so the direct path can send through it.
            transport = httpx.AsyncHTTPTransport(verify=self._ssl or True)
        client = httpx.AsyncClient(
            auth=self._auth,
            timeout=httpx.Timeout(self._timeout),
            headers=self._headers,
            follow_redirects=False,
            transport=transport,
            verify=True if self._ssl is None else self._ssl,
        )
        if self._direct and transport is not None:
            self._direct_senders[client] = DirectSender(client, transport)
        return client

    async def aclose(self) -> None:
        clients = [self._http, *self._update_clients]
        self._update_clients.clear()
        self._idle_update_clients.clear()
        self._direct_senders.clear()
        for client in clients:
            await client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """Send one request to ``{url}/{path}``; raise :class:`RemoteError` without an answer.

        ``body`` is sent as compact JSON; ``content`` is a JSON body already encoded, sent as
        it is. With alternates, a url that gives no answer (or a 502/503/504) passes the
        request to the next; the last one's answer or error is the caller's.
        """
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode("utf-8")
        for tried in range(len(self._bases)):
            last = tried == len(self._bases) - 1
            try:
                response = await self._send(
                    method, path, content=content, headers=headers, http=http or self._http
                )
            except RemoteError:
                if last:
                    raise
            else:
                if last or response.status_code not in (502, 503, 504):
                    return response
            self._current = (self._current + 1) % len(self._bases)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        headers: dict[str, str] | None,
        http: httpx.AsyncClient,
    ) -> httpx.Response:
        url, parsed = self._url(self._bases[self._current], path)
        send_headers = dict(headers or {})
        if self._node_proof is not None:
            send_headers[NODE_PROOF_HEADER] = self._node_proof()
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout):
                direct = self._direct_senders.get(http)
                if direct is not None and direct.usable():
                    return await direct.send(
                        method,
                        parsed,
                        headers=send_headers,
                        timeout=self._timeout_extension,
                        content=content,
                    )
                response = await http.request(method, parsed, content=content, headers=send_headers)
                await response.aread()
                return response
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise RemoteTimeout(
                f"{method} {url} timed out after "
                f"{format_duration(self.settings.timeout)} (remote.timeout)"
            ) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise RemoteUnreachable(f"{method} {url} failed: {reason}") from exc

    def _url(self, base: str, path: str) -> tuple[str, httpx.URL]:
        """``{base}/{path}`` without user info (as text and parsed), worked out once."""
        known = self._urls.get((base, path))
        if known is None:
            text = strip_userinfo(base.rstrip("/") + "/" + path.lstrip("/"))
            known = self._urls[(base, path)] = (text, httpx.URL(text))
        return known

    async def post_update(
        self, content: bytes, *, idempotency_key: str, sequence: int
    ) -> httpx.Response:
        """``POST {url}/update`` with the seed's body, already encoded (the outbox keeps it as
        it is sent: :attr:`PendingUpdate.content`); extra information only in headers."""
        if self._idle_update_clients:
            http = self._idle_update_clients.pop()
        else:
            http = self._new_http()
            self._update_clients.append(http)
        try:
            return await self.request(
                "POST",
                "update",
                content=content,
                headers={"Idempotency-Key": idempotency_key, "X-Lightd-Sequence": str(sequence)},
                http=http,
            )
        finally:
            if http in self._update_clients:  # not closed meanwhile
                self._idle_update_clients.append(http)

    async def health(self) -> httpx.Response:
        """``GET {url}/health``."""
        return await self.request("GET", "health")

    async def get_config(self) -> httpx.Response:
        """``GET {url}/config``."""
        return await self.request("GET", "config")

    async def post_config(self, document: ConfigDocument) -> httpx.Response:
        """``POST {url}/config`` with ``{"containers": [...], "settings": {...}}``."""
        return await self.request("POST", "config", body=document.model_dump(mode="json"))
