"""How long to wait before trying an update again.

Exponential backoff with jitter, capped (as Prefect's client does): attempt ``n`` waits a random
time between half and all of ``min(cap, base * 2**(n-1))``, so many agents that lost the same
remote do not all come back in the same second. A ``Retry-After`` answer (seconds or an HTTP
date) overrides the backoff: the remote said when it wants to hear from us again.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "retry_after_seconds"]


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based), with jitter, at most ``cap``."""
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(cap, base * (2.0**exponent))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds from now; ``None`` if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
