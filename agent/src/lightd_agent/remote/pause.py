"""The remote's state as remote sync sees it, as values rather than loose fields.

- :class:`RemoteState`: what the last health check said (``ok``, ``failed``, ``unknown``);
- :class:`Pause`: whether delivery to the whole remote waits, why (:class:`PauseKind`) and
  until when. Only the health loop (a remote that answers again) and delivery change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Pause", "PauseKind", "RemoteState"]


class RemoteState(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


class PauseKind(StrEnum):
    DOWN = "down"
    """No connection to the remote: backoff with jitter, cut short by a good health check."""
    AUTH = "auth"
    """The remote refused the token: retried once per health interval."""
    RETRY_AFTER = "retry-after"
    """The remote asked for a pause (``Retry-After``, capped by ``remote.retry_max_delay``)."""


@dataclass
class Pause:
    """Delivery to the whole remote waits until ``until`` (a ``time.time()``) for ``kind``."""

    kind: PauseKind | None = None
    until: float = 0.0
    failures: int = 0
    """Consecutive deliveries without an answer (the backoff's attempt number)."""

    def active(self, now: float) -> bool:
        return self.kind is not None and self.until > now

    def hold(self, seconds: float, kind: PauseKind, now: float) -> None:
        """Pause for ``seconds``; a longer pause already set stays, a ``Retry-After`` wins."""
        until = now + seconds
        if until > self.until or kind is PauseKind.RETRY_AFTER:
            self.until = until
            self.kind = kind

    def clear(self) -> None:
        self.kind = None
        self.until = 0.0
        self.failures = 0
