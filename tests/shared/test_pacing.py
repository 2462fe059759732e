"""The one copy of backoff with jitter, the drift-free ticker and listen-host-to-URL."""

from __future__ import annotations

import random

import pytest

from lightd_shared.pacing import backoff_delay, listen_url, ticker_wait, url_host


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 5.0), (200, 5.0)]:
        delays = [backoff_delay(attempt, base=0.5, cap=5.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not one value


def test_ticker_waits_one_period_after_the_previous_start() -> None:
    assert ticker_wait(10.0, started=100.0, now=103.0) == 7.0
    assert ticker_wait(10.0, started=100.0, now=115.0) == 0.0  # a slow run: no negative sleep


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8070"),
        ("::", "http://127.0.0.1:8070"),
        ("", "http://127.0.0.1:8070"),
        ("::1", "http://[::1]:8070"),
        ("[::1]", "http://[::1]:8070"),
        ("fd00::5", "http://[fd00::5]:8070"),
        ("10.0.0.2", "http://10.0.0.2:8070"),
        ("agent.local", "http://agent.local:8070"),
    ],
)
def test_listen_url(host: str, url: str) -> None:
    assert listen_url(host, 8070) == url


def test_url_host_brackets_bare_ipv6_only() -> None:
    assert url_host("::1") == "[::1]"
    assert url_host("[::1]") == "[::1]"
    assert url_host("example.org") == "example.org"
