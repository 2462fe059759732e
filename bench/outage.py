"""Figure 6's bookkeeping: which updates the agent really produced, and which of them arrived.

Counting answered actions against received updates is wrong both ways: a ``kill`` of a
server that is already stopped answers 200 without producing an update (counted as a loss),
and a refused action followed by a no-op hides nothing but shifts the count. So the figure
counts from two independent sides and compares them per server:

- **state changes** the answers reported: each 200 answer carries the server's state after
  the action; an action whose answer differs from the state before it produced exactly one
  update (``events: "all"``: ``running`` and ``stopped``), one that does not produced none;
- **sequence numbers** the remote received: the agent numbers each server's updates
  ``1, 2, 3, ...`` (``X-Lightd-Sequence``), so everything the agent queued for a server
  during the outage is the range from the last number received before it to the last one
  received after it.

An update is **lost** when its number is missing from that range (a gap), or when the
answers show more state changes than the numbers cover (a tail that never arrived). Updates
beyond the state changes (an ``Error`` of a failed action) are reported, never subtracted.
Every non-200 answer is a **refusal**, grouped by status and reason; a 5xx refusal is
**explained** when the agent's log names its request at warning or above.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "OutageCount", "count_outage", "explained_requests", "unexplained"]


@dataclass(frozen=True)
class Answer:
    """One action of the outage: what was asked, the HTTP status, the state (or the reason)."""

    server: str
    action: str
    status: int
    state: str | None = None  # the answer's state on 200
    detail: str = ""  # the answer's detail otherwise

    @property
    def request(self) -> tuple[str, str]:
        return "POST", f"/containers/{self.server}/{self.action}"


@dataclass
class OutageCount:
    """What figure 6 reports; :func:`count_outage` fills it in."""

    answered: int = 0  # actions answered 200
    changes: int = 0  # of those, the ones that changed the server's state
    produced: int = 0  # updates the agent numbered during the outage (sequence ranges)
    received: int = 0  # distinct outage updates the remote received
    lost: int = 0
    extra: int = 0  # produced beyond the state changes (reported, not a loss)
    refused: Counter[str] = field(default_factory=Counter)  # "503: reason" -> count
    lost_by_server: dict[str, int] = field(default_factory=dict)

    @property
    def refusals(self) -> int:
        return sum(self.refused.values())


def _reason(answer: Answer) -> str:
    detail = answer.detail.removeprefix("lifecycle actions are refused right now: ")
    return f"{answer.status}: {detail[:120]}"


def count_outage(
    initial: dict[str, str],
    answers: list[Answer],
    before: dict[str, int],
    records: list[dict[str, Any]],
) -> OutageCount:
    """Compare the updates the answers and the sequences say were made with those received.

    ``initial``: each server's state when the outage began; ``answers``: every action's
    answer, in the order each server's were made; ``before``: the last sequence number the
    remote had received of each server before the outage; ``records``: what the remote
    received after it came back (``server``, ``key``, ``sequence``).
    """
    count = OutageCount()
    changes: Counter[str] = Counter()
    state = dict(initial)
    for answer in answers:
        if answer.status != 200:
            count.refused[_reason(answer)] += 1
            continue
        count.answered += 1
        if answer.state != state.get(answer.server):
            changes[answer.server] += 1
            state[answer.server] = answer.state or ""
    count.changes = sum(changes.values())
    received: dict[str, set[int]] = {}
    keys: set[str] = set()
    for record in records:
        server = str(record.get("server"))
        sequence = record.get("sequence")
        if sequence is None or int(sequence) <= before.get(server, 0):
            continue  # an update from before the outage, delivered again: not one of these
        received.setdefault(server, set()).add(int(sequence))
        keys.add(str(record.get("key")))
    count.received = len(keys)
    for server in sorted(set(initial) | set(received) | set(changes)):
        base = before.get(server, 0)
        got = received.get(server, set())
        produced = (max(got) - base) if got else 0
        count.produced += produced
        count.extra += max(0, produced - changes[server])
        span = max(produced, changes[server])  # numbers the agent must have used
        missing = len(set(range(base + 1, base + span + 1)) - got)
        if missing:
            count.lost_by_server[server] = missing
            count.lost += missing
    return count


def explained_requests(log_lines: list[str]) -> Counter[tuple[str, str, int]]:
    """``(method, path, status)`` of each refusal the agent logged (its 503/504 warnings)."""
    logged: Counter[tuple[str, str, int]] = Counter()
    for line in log_lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("level") not in ("warning", "error"):
            continue
        method, path, status = entry.get("method"), entry.get("path"), entry.get("status_code")
        if isinstance(method, str) and isinstance(path, str) and status is not None:
            logged[(method, path, int(status))] += 1
    return logged


def unexplained(answers: list[Answer], log_lines: list[str]) -> int:
    """5xx answers the agent's log does not explain (no warning line for that request)."""
    logged = explained_requests(log_lines)
    refused: Counter[tuple[str, str, int]] = Counter(
        (*a.request, a.status) for a in answers if a.status >= 500
    )
    return sum(max(0, n - logged[key]) for key, n in refused.items())
