"""One Redis client, shared code of the ``redis`` stores (registry, history, activity log).

Each store has its own client of ``registry.redis_url`` (socket timeouts, a health check every
30 s) with its Lua scripts registered on open; EVALSHA falls back to EVAL after a Redis restart
by itself. :func:`guarded` wraps a store's methods: when Redis cannot be reached they raise
:class:`~lightd_coordinator.registry.base.RegistryUnavailable` (the API answers ``503``), and
the message names the URL with its user info masked, never the password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lightd_coordinator.registry.base import RegistryUnavailable
from lightd_shared.remote import mask_url

__all__ = ["RedisConnection", "guarded"]

P = ParamSpec("P")
T = TypeVar("T")


class RedisConnection:
    """A client of ``url`` with ``scripts`` (name -> Lua source) registered on :meth:`open`."""

    def __init__(
        self, url: str, *, scripts: Mapping[str, str], what: str, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.display_url = mask_url(url)
        self.what = what
        self._sources = dict(scripts)
        self._timeout = timeout
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    async def open(self) -> None:
        client = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            health_check_interval=30,
        )
        self._client = client
        for name, source in self._sources.items():
            self._scripts[name] = client.register_script(source)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> Any:
        # Any: redis-py types every answer as a union of bytes, str and awaitables whatever
        # decode_responses says; each store decodes each answer where it reads it
        if self._client is None:
            raise RuntimeError(f"the redis {self.what} is not open")
        return self._client

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)


def guarded(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn "Redis cannot be reached" into :class:`RegistryUnavailable` with a masked URL.

    For methods of a store with a ``display_url`` attribute (its :class:`RedisConnection`'s).
    """

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except AuthenticationError:
            raise RegistryUnavailable(
                f"the Redis registry at {_url(args)} refused the credentials of "
                "registry.redis_url (AuthenticationError); fix the password there"
            ) from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RegistryUnavailable(
                f"the Redis registry at {_url(args)} cannot be reached "
                f"({type(exc).__name__}); this replica retries on every call"
            ) from None
        except ResponseError as exc:
            if "LOADING" in str(exc) or "MASTERDOWN" in str(exc):
                raise RegistryUnavailable(
                    f"the Redis registry at {_url(args)} is not ready ({exc})"
                ) from None
            raise

    return call


def _url(args: tuple[Any, ...]) -> str:
    return str(getattr(args[0], "display_url", "registry.redis_url")) if args else "?"
