"""``websocket.origins``: exact origins, any port (``http://localhost:*``), and the refusal log.

Over real HTTP: a coordinator on a free loopback port, asked the way a browser asks (an
``Origin`` header on a simple GET, and a preflight). The browser side, a page opening ``/ws`` with
``EventSource``, is in ``tests/cluster/test_browser.py`` against the compose cluster.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from lightd_coordinator.config import ConfigError, load_settings
from lightd_coordinator.origins import OriginMatcher, check_origin_pattern
from tests.coordinator.harness import STATIC, coordinator, make_settings

LOCAL = ["http://localhost:*", "http://127.0.0.1:*"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:8000", True),
        ("http://localhost:41234", True),
        ("http://localhost", True),
        ("http://127.0.0.1:5173", True),
        ("HTTP://LOCALHOST:8000", True),
        ("https://localhost:8000", False),  # another scheme
        ("http://localhost.evil.example:8000", False),
        ("http://evil.example:8000", False),
        ("http://127.0.0.1.evil.example", False),
        ("http://localhost:8000/", False),  # browsers never send a path
        ("null", False),
        ("", False),
    ],
)
def test_any_port_entries_match_that_scheme_and_host_only(origin: str, allowed: bool) -> None:
    assert OriginMatcher(LOCAL).matches(origin) is allowed


def test_exact_entries_and_the_star() -> None:
    exact = OriginMatcher(["https://panel.example.com", "http://localhost:8080"])
    assert exact.matches("https://panel.example.com")
    assert exact.matches("http://localhost:8080")
    assert not exact.matches("http://localhost:8081")
    assert not exact.matches("https://panel.example.com:8443")
    assert not exact.matches("http://panel.example.com")
    assert OriginMatcher(["*"]).matches("http://anything.example:1")


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("https://panel.example.com/", "an origin has no path, write 'https://panel.example.com'"),
        ("https://panel.example.com/app", "write 'https://panel.example.com'"),
        ("panel.example.com", "is not an origin"),
        ("http://localhost:99999", "out of range"),
        ("http://*.example.com", "is not an origin"),
    ],
)
def test_entries_that_can_never_match_are_refused_with_the_fix(entry: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_origin_pattern(entry)
    assert says in str(caught.value)


def test_a_bad_entry_in_the_config_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text('websocket:\n  origins: ["https://panel.example.com/"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "websocket.origins" in message
    assert "write 'https://panel.example.com'" in message


def test_the_environment_sets_any_port_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTD_COORD_WEBSOCKET__ORIGINS", '["http://localhost:*"]')
    assert load_settings(None).websocket.origins == ["http://localhost:*"]


def test_a_local_page_on_any_port_may_open_the_stream_with_a_token() -> None:
    settings = make_settings(auth={"enabled": True}, websocket={"origins": LOCAL})
    with coordinator(settings) as (base, _):
        origin = "http://localhost:40123"
        with httpx.stream(
            "GET", f"{base}/ws", params={"token": STATIC}, headers={"Origin": origin}, timeout=5
        ) as response:
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
        preflight = httpx.options(
            f"{base}/api/v1/nodes",
            headers={
                "Origin": "http://127.0.0.1:9999",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"


def test_a_refused_origin_is_logged_once_naming_it_and_the_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(websocket={"origins": ["https://panel.example.com"]})
    with coordinator(settings) as (base, _):
        caplog.set_level(logging.DEBUG, logger="lightd_coordinator.origins")
        for _ in range(3):
            refused = httpx.get(f"{base}/health", headers={"Origin": "http://localhost:8000"})
            assert refused.status_code == 200
            assert "access-control-allow-origin" not in refused.headers
        allowed = httpx.get(f"{base}/health", headers={"Origin": "https://panel.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://panel.example.com"
        # the coordinator's own pages (its /docs) send its own origin: no CORS refusal there
        httpx.get(f"{base}/health", headers={"Origin": base})
    lines = [r for r in caplog.records if r.name == "lightd_coordinator.origins"]
    warnings = [r for r in lines if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in lines]
    message = warnings[0].getMessage()
    assert "'http://localhost:8000'" in message
    assert "websocket.origins" in message
    assert "LIGHTD_COORD_WEBSOCKET__ORIGINS" in message
    assert "https://panel.example.com" in message
    assert [r.levelno for r in lines] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
