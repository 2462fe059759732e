"""The remote's health loop: ``GET {url}/health`` at start and every ``remote.health_interval``.

Drift-free (:func:`lightd_shared.pacing.every`); each check logs the seed's line,
``Remote health check: OK`` or ``Remote health check: Failed: <reason>``. An OK calls
``on_ok`` when the remote came back or delivery is paused: every backoff and ``Retry-After``
pause is cut short, so delivery resumes the moment the remote is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from lightd_agent.remote.client import RemoteClient, RemoteError
from lightd_agent.remote.pause import RemoteState
from lightd_shared.pacing import every
from lightd_shared.remote import RemoteSettings, mask_url

__all__ = ["TOKEN_HINT", "HealthCheck", "excerpt"]

log = logging.getLogger("lightd_agent.remote")

TOKEN_HINT = "remote rejected the token; check that both sides use the same token"


def excerpt(response: httpx.Response, limit: int = 200) -> str:
    """The start of a response's body on one line, for a log or an error."""
    text = response.text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


class HealthCheck:
    """What the last health check said, and the loop that asks."""

    def __init__(
        self,
        settings: Callable[[], RemoteSettings],
        client: Callable[[], RemoteClient | None],
        on_ok: Callable[[bool], None],
    ) -> None:
        self._settings = settings
        self._client = client
        self._on_ok = on_ok
        """Called after an OK with whether the remote just came back."""
        self.state = RemoteState.UNKNOWN
        self.last_check: datetime | None = None
        self.last_error: str | None = None

    def forget(self) -> None:
        """New settings: nothing is known about the remote they name."""
        self.state = RemoteState.UNKNOWN
        self.last_error = None

    async def loop(self) -> None:
        interval = self._settings().health_interval.total_seconds()
        await every(interval, self.check, name="remote health check", log=log)

    async def check(self) -> bool:
        """``GET {url}/health`` once; log the seed's line; tell delivery when it is OK."""
        client = self._client()
        if client is None:
            return False
        reason: str | None
        try:
            response = await client.health()
        except RemoteError as exc:
            reason = str(exc)
        else:
            if response.is_success:
                reason = None
            elif response.status_code in (401, 403):
                reason = f"HTTP {response.status_code}: {TOKEN_HINT}"
            else:
                reason = f"HTTP {response.status_code} from GET {mask_url(response.request.url)}"
                said = excerpt(response)
                if said:
                    reason += f": {said}"
        self.last_check = datetime.now(UTC)
        shown = self._settings().shown_url()
        if reason is None:
            came_back = self.state is not RemoteState.OK
            self.state = RemoteState.OK
            self.last_error = None
            log.info("Remote health check: OK", extra={"remote_url": shown})
            self._on_ok(came_back)
            return True
        self.state = RemoteState.FAILED
        self.last_error = reason
        log.warning(
            "Remote health check: Failed: %s",
            reason,
            extra={"remote_url": shown, "reason": reason},
        )
        return False
