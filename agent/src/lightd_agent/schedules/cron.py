"""Cron expressions: the full check (``croniter``) and the next time one fires.

The only module importing ``croniter``, and only when a cron expression is first read: an
agent with no schedule never loads it (about 2.3 MiB of an idle agent's RSS). Expressions
have exactly five fields (the shape is checked in
:func:`lightd_shared.schedules.check_cron_shape`); they are read in the schedule's IANA
timezone, so ``0 4 * * *`` in ``Europe/Berlin`` stays at 04:00 local across DST.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

from lightd_shared.schedules import check_cron_shape

__all__ = ["check_cron", "next_after"]


def check_cron(expression: str, timezone: str) -> None:
    """:class:`ValueError` naming the problem when ``expression`` can never be used."""
    check_cron_shape(expression)
    from croniter import CroniterError  # loaded on first use, see above

    try:
        next_after(expression, timezone, datetime(2026, 1, 1, tzinfo=UTC))
    except CroniterError as exc:
        detail = str(exc)
        if "failed to find next date" in detail:
            raise ValueError(f"cron {expression!r} never fires (no such date)") from None
        raise ValueError(f"cron {expression!r} is not valid: {detail}") from None


def next_after(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``expression`` fires, in UTC."""
    from croniter import croniter  # loaded on first use, see above

    zone = zoneinfo.ZoneInfo(timezone)
    local = after.astimezone(zone)
    fired: datetime = croniter(expression, local).get_next(datetime)
    return fired.astimezone(UTC)
