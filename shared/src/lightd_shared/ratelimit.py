"""Rate limits on failed authentication: a guess must cost the guesser, never the honest caller.

Both programs check bearer tokens (the agent's ``authorization.token`` and dispatch JWTs, the
coordinator's server token, API JWTs, agent token and ``POST /api/v1/auth/token``). A token is
cheap to guess when nothing slows the guesser, so :class:`FailedAuthLimit` wraps the whole ASGI
app and watches what it answers:

- every ``401`` answered to a client takes one token from that client's bucket (a token bucket:
  ``burst`` at most, refilled at ``per_minute``); nothing else is counted, so successful calls
  never count against a client;
- while a client's bucket is empty, every request of that client (but ``/health``) is answered
  ``429`` with ``Retry-After`` (whole seconds until the next token), before the app sees it: so
  a blocked guesser learns nothing about its next guess.

The client is the peer address of the connection (``scope["client"]``); behind a reverse proxy
every caller shares the proxy's address, so limit there or raise the limits (docs/security.md).
The clock is injected (:class:`FailedAuthLimit` ``clock=``), so tests need no sleeps.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FailedAuthLimit",
    "FailureBuckets",
    "RateLimitSettings",
]

Clock = Callable[[], float]

# The ASGI types (as starlette.types spells them; lightd-shared depends on pydantic alone).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RateLimitSettings(BaseModel):
    """The ``rate_limit`` section of both programs' configuration."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(default=True, description="Answer 429 to clients that fail auth often")
    burst: int = Field(
        default=100, ge=1, le=1_000_000, description="Failed auth answers a client may get at once"
    )
    per_minute: float = Field(
        default=60.0,
        gt=0,
        le=1_000_000,
        description="Failed auth answers a client earns back per minute",
    )
    max_clients: int = Field(
        default=10_000, ge=1, description="Clients tracked at once (the oldest are forgotten)"
    )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class FailureBuckets:
    """One token bucket per client, bounded in number; the only state of the limit."""

    def __init__(self, settings: RateLimitSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._rate = settings.per_minute / 60.0  # tokens per second
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _refilled(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self._clock()
        bucket.tokens = min(
            float(self.settings.burst), bucket.tokens + (now - bucket.stamp) * self._rate
        )
        bucket.stamp = now
        if bucket.tokens >= self.settings.burst:
            del self._buckets[client]  # full again: nothing to remember
            return None
        return bucket

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it may now."""
        bucket = self._refilled(client)
        if bucket is None or bucket.tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def failed(self, client: str) -> None:
        """``client`` got a 401: one token less."""
        bucket = self._refilled(client)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.settings.burst), stamp=self._clock())
            self._buckets[client] = bucket
            while len(self._buckets) > self.settings.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)


class FailedAuthLimit:
    """ASGI middleware: count 401 answers per client, answer 429 while a client has none left."""

    def __init__(
        self,
        app: ASGIApp,
        settings: RateLimitSettings,
        *,
        clock: Clock = time.monotonic,
        exempt: frozenset[str] = frozenset({"/health"}),
    ) -> None:
        self.app = app
        self.enabled = settings.enabled
        self.buckets = FailureBuckets(settings, clock)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        client = _client_of(scope)
        wait = self.buckets.retry_after(client)
        if wait is not None:
            await _too_many(send, wait)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 401:
                self.buckets.failed(client)
            await send(message)

        await self.app(scope, receive, counting)


def _client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _too_many(send: Send, wait: int) -> None:
    detail = (
        "too many failed authentication attempts from this client; "
        f"retry after {wait} s (rate_limit in the configuration)"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(wait).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})
