"""10,000 nodes: the fleet page shows one page of rows and asks the API nothing per node.

A coordinator with auth off (the page opens straight away, no sign-in) whose registry holds
10,000 nodes before it starts: the page gets them all in the event stream's ``initial_state``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import Browser, Request, expect

from lightd_coordinator.main import create_app
from lightd_coordinator.registry import MemoryRegistry, StoredNode
from lightd_shared.nodes import NodeRecord
from lightd_shared.timestamps import utcnow
from tests.browser.conftest import SCREENSHOTS
from tests.coordinator.harness import make_settings
from tests.harness.servers import serve

NODES = 10_000


def _fleet() -> MemoryRegistry:
    registry = MemoryRegistry()
    now = utcnow()

    async def fill() -> None:
        for i in range(NODES):
            record = NodeRecord.model_validate(
                {
                    "id": f"node-{i:05d}",
                    "address": f"10.0.{i // 250}.{i % 250 + 1}",
                    "port": 8080,
                    "status": "active" if i % 10 else "inactive",
                    "labels": {"zone": f"z{i % 4}"},
                    "created_at": now,
                    "last_seen": now,
                },
                strict=False,
            )
            await registry.put_node(StoredNode(record=record, active_since=now))

    # playwright's sync API runs an event loop in this thread: fill the registry in another one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, fill()).result()
    return registry


def test_ten_thousand_nodes_one_page_no_request_per_node(browser: Browser, tmp_path: Path) -> None:
    app = create_app(make_settings(), registry=_fleet())
    with serve(app) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(_path(request)))
        try:
            page.goto(f"{base}/")
            expect(page.locator("#fleet-count")).to_have_text(
                f"{NODES} of {NODES} nodes", timeout=30_000
            )
            expect(page.locator("#login")).to_be_hidden()  # auth off: no sign-in
            expect(page.locator("#fleet-rows tr")).to_have_count(100)
            expect(page.locator(".pager")).to_contain_text("page 1 of 100")
            page.select_option("#filter-status", "inactive")
            expect(page.locator("#fleet-count")).to_have_text(f"{NODES // 10} of {NODES} nodes")
            page.fill("#filter-label", "zone=z2")
            # inactive nodes are i % 10 == 0, all even, so z0 or z2: half of them
            expect(page.locator("#fleet-count")).to_have_text(f"{NODES // 20} of {NODES} nodes")
            page.click(".pager button:has-text('next')")
            expect(page.locator(".pager")).to_contain_text("page 2 of 5")
        finally:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "test_ten_thousand_nodes.png"))
            context.close()
        api = [path for path in requests if path.startswith("/api/")]
        assert len(api) <= 3, f"the fleet page asked the API {len(api)} times: {api}"
        assert not any(path.startswith("/api/v1/nodes/node-") for path in requests)


def _path(request: Request) -> str:
    url = request.url
    return "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url
