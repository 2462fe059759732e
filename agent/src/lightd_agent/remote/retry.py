"""How long to wait before trying an update again.

Exponential backoff with jitter (:func:`lightd_shared.pacing.backoff_delay`, the one copy both
programs use). A ``Retry-After`` answer (seconds or an HTTP date) overrides the backoff: the
remote said when it wants to hear from us again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from lightd_shared.pacing import backoff_delay

__all__ = ["backoff_delay", "retry_after_seconds"]


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
