"""A server's log follow, from its agent through the coordinator to a browser, bounded.

``GET /api/v1/nodes/{id}/containers/{server}/logs?follow=true`` opens the agent's
:data:`~lightd_shared.stats.LOG_FOLLOW_PATH` with a short-lived JWT signed with the node's
dispatch key (``sub`` :data:`~lightd_shared.stats.LOG_FOLLOW_SUBJECT`: it opens that one
stream and can run no command) and relays it as Server-Sent Events:

- ``event: log``     one line of output, blank lines included (cut at ``max_line``
  characters, just above the agent's own bound, so an agent's line comes whole);
- ``event: skipped`` ``{"lines": N}``: lines dropped, not queued: by the agent's throttle
  (its ``event: dropped``, passed on) or here, past ``lines_per_second`` (a chatty server
  cannot fill the coordinator's memory);
- ``event: end``     the agent's stream ended (the server stopped or was removed).

At most ``max_streams`` follows run at once (``429`` beyond). The browser never calls an agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import httpx

from lightd_coordinator.security import mint_token
from lightd_coordinator.tls import TlsSettings
from lightd_shared.console import DroppedLines
from lightd_shared.nodes import NodeRecord
from lightd_shared.stats import LOG_FOLLOW_PATH, LOG_FOLLOW_PREFIX, LOG_FOLLOW_SUBJECT

__all__ = ["FollowRefused", "FollowStream", "LogFollower"]

log = logging.getLogger(__name__)


class FollowRefused(Exception):
    """The follow could not start; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Budget:
    """A token bucket: ``rate`` lines per second, bursts up to ``rate``."""

    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _dropped_lines(data: str) -> int:
    """The count of an agent's ``event: dropped`` (``{"lines": N}``); 0 if unreadable."""
    try:
        return DroppedLines.model_validate_json(data).lines
    except ValueError:
        return 0


class LogFollower:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_streams: int = 64,
        lines_per_second: float = 200.0,
        max_line: int = 65536 + 64,
        token_expiry: float = 60.0,
        agent_url: Callable[[NodeRecord, str], str] | None = None,
    ) -> None:
        self._client = client
        self._agent_url = agent_url or TlsSettings().agent_url  # plain http by default
        self._slots = asyncio.Semaphore(max_streams)
        self.max_streams = max_streams
        self.lines_per_second = lines_per_second
        self.max_line = max_line
        self._token_expiry = token_expiry
        self.active = 0

    async def open(
        self, node: NodeRecord, key: str | None, server: str, tail: int | None
    ) -> FollowStream:
        """Connect to the agent; raise :class:`FollowRefused`, or return the relayed events."""
        if self._slots.locked():
            raise FollowRefused(
                429, f"{self.max_streams} log follows are open already; close one and try again"
            )
        if not key:
            raise FollowRefused(
                409,
                f"node {node.id} registered without a dispatch key, so the coordinator cannot "
                "open its log stream; only lightd agents can be followed",
            )
        await self._slots.acquire()
        try:
            response = await self._connect(node, key, server, tail)
        except BaseException:
            self._slots.release()
            raise
        self.active += 1
        return FollowStream(self, node, server, response)

    def _release(self) -> None:
        self.active -= 1
        self._slots.release()

    async def _connect(
        self, node: NodeRecord, key: str, server: str, tail: int | None
    ) -> httpx.Response:
        token = mint_token(
            key,
            subject=LOG_FOLLOW_SUBJECT,
            audience=node.id,
            expires_in=self._token_expiry,
            token_id=f"{LOG_FOLLOW_PREFIX}{server}:{uuid.uuid4().hex}",
        )
        path = LOG_FOLLOW_PATH.format(server=server)
        url = self._agent_url(node, path)
        params = {"tail": str(tail)} if tail is not None else {}
        request = self._client.build_request(
            "GET",
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            # the agent pings every 15 s: a minute of silence is a dead agent, and frees the slot
            timeout=httpx.Timeout(10.0, read=60.0),
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FollowRefused(
                502,
                f"node {node.id} unreachable at {node.address}:{node.port}: {type(exc).__name__}",
            ) from None
        if response.status_code != 200:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > 2000:
                    break
            await response.aclose()
            detail = body.decode("utf-8", "replace")[:500]
            try:
                detail = str(json.loads(detail).get("detail", detail))
            except (ValueError, AttributeError):
                pass
            status = response.status_code if response.status_code in (404, 409, 503) else 502
            raise FollowRefused(status, f"node {node.id} refused the log follow: {detail}")
        return response


class FollowStream:
    """One open follow: iterate :meth:`events`; :meth:`close` in any case."""

    def __init__(
        self, follower: LogFollower, node: NodeRecord, server: str, response: httpx.Response
    ) -> None:
        self._follower = follower
        self._node = node
        self._server = server
        self._response = response
        self._closed = False

    async def events(self) -> AsyncIterator[dict[str, str]]:
        node, server, response = self._node, self._server, self._response
        rate = self._follower.lines_per_second
        max_line = self._follower.max_line
        budget = _Budget(rate, rate, time.monotonic())
        skipped = 0
        event = ""
        data: list[str] = []
        try:
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "":
                    if event == "dropped" and data:
                        skipped += _dropped_lines("\n".join(data))
                        yield {"event": "skipped", "data": json.dumps({"lines": skipped})}
                        skipped = 0
                    elif event == "log" and data:
                        text = "\n".join(data)
                        if budget.take(time.monotonic()):
                            if skipped:
                                yield {"event": "skipped", "data": json.dumps({"lines": skipped})}
                                skipped = 0
                            yield {"event": "log", "data": text[:max_line]}
                        else:
                            skipped += 1
                    event, data = "", []
            if skipped:
                yield {"event": "skipped", "data": json.dumps({"lines": skipped})}
            yield {"event": "end", "data": json.dumps({"server": server, "node_id": node.id})}
        except httpx.HTTPError as exc:
            log.info("log follow of %s on node %s ended: %s", server, node.id, type(exc).__name__)
            yield {"event": "end", "data": json.dumps({"server": server, "node_id": node.id})}
        finally:
            await self.close()

    async def close(self) -> None:
        """End the agent's stream and free the slot (once; safe to call again)."""
        if self._closed:
            return
        self._closed = True
        try:
            # shielded: this runs when the browser went away, inside a cancelled scope
            with anyio.CancelScope(shield=True):
                await self._response.aclose()
        finally:
            self._follower._release()
