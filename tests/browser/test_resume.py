"""The fleet page resumes its event stream with ``Last-Event-ID``: no reload, nothing missed.

The coordinator drops a client whose queue is full (``websocket.queue_size``); here the queue
holds one event and one liveness sweep marks five nodes inactive at once, so the page's stream
is cut. The browser's ``EventSource`` reconnects with ``Last-Event-ID`` and the coordinator
replays the events after it: every node turns ``inactive`` on the page without a reload.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from playwright.sync_api import Browser, expect

from lightd_coordinator.main import create_app
from tests.browser.conftest import SCREENSHOTS
from tests.coordinator.harness import make_settings, node_body
from tests.harness.servers import serve


def test_the_fleet_page_resumes_after_the_coordinator_drops_it(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lightd_coordinator")
    settings = make_settings(
        registry={"node_timeout": "1s", "health_check_interval": "200ms"},
        websocket={"queue_size": 1, "ping_period": "1s"},
    )
    prefix = f"resume-{uuid.uuid4().hex[:6]}"
    with serve(create_app(settings)) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        try:
            page.goto(f"{base}/")
            expect(page.locator("#live")).to_have_text("live", timeout=10_000)
            page.fill("#filter-text", prefix)
            ids = [f"{prefix}-{i}" for i in range(5)]
            with httpx.Client(base_url=base, timeout=10) as client:
                for node_id in ids:
                    response = client.post("/api/v1/nodes", json=node_body(node_id, 9))
                    assert response.status_code == 201
            # no heartbeats: one sweep marks all five inactive in one go, overflowing the
            # page's one-event queue; the page resumes and shows every one of them
            for node_id in ids:
                row = page.locator(f'tr[data-node="{node_id}"]')
                expect(row.locator("[data-state]")).to_have_text("inactive", timeout=15_000)
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "test_the_fleet_page_resumes.png"))
            context.close()
    messages = [record.getMessage() for record in caplog.records]
    assert any("slow consumer" in message for message in messages), messages
    assert any("resuming after event" in message for message in messages), messages
