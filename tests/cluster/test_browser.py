"""The coordination document's browser client, in headless Chromium, against the compose cluster.

The document's snippet, ``new EventSource('http://localhost:3001/ws')`` with ``onmessage``, plus
the documented ``?token=`` (auth is on in the cluster), on a page served from this machine on
another port, as a newcomer tries it (``python -m http.server``): the cluster's coordinator
allows local pages (``http://localhost:*``, ``http://127.0.0.1:*``), so the page reads the
stream. A page from an origin that is not listed is refused by the browser, and the
coordinator's log names that origin and the setting to change.

Debian's chromium (``/usr/bin/chromium``), driven by playwright's Python package; never a
browser playwright downloads. Missing, the test fails and says what to install.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.cluster.conftest import REPO, env_file_value

pytestmark = pytest.mark.cluster

CHROMIUM = Path("/usr/bin/chromium")
# A host name the browser resolves to this machine, for a page whose origin the cluster does not
# list (the cluster allows http://localhost:* and http://127.0.0.1:*).
UNLISTED_HOST = "panel.test"

# The document's snippet, with ?token= (EventSource cannot send a header); what it receives is
# kept on the page for the test to read.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lightd events</title></head><body>
<script>
window.received = [];
window.errors = 0;
const eventSource = new EventSource(%(url)s);

eventSource.onmessage = function(event) {
  const data = JSON.parse(event.data);
  console.log('Event:', data.type, data.data);
  window.received.push(data);
};
eventSource.onerror = function() { window.errors += 1; };
window.eventSource = eventSource;
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--host-resolver-rules=MAP {UNLISTED_HOST} 127.0.0.1",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def ws_url(cluster_url: str, operator_token: str) -> str:
    """The document's URL, http://localhost:<port>/ws, with the operator token."""
    port = urlsplit(cluster_url).port or 3001
    return f"http://localhost:{port}/ws?token={operator_token}"


@pytest.fixture(scope="module")
def page_port(ws_url: str) -> Iterator[int]:
    """A page holding the snippet, served on this machine on a port of its own."""
    body = (PAGE % {"url": json.dumps(ws_url)}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def received(page: Page) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = page.evaluate("window.received")
    return value


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_documents_event_source_snippet_works_from_a_local_page(
    page: Page, page_port: int, host: str, coordinator: httpx.Client
) -> None:
    page.goto(f"http://{host}:{page_port}/")
    page.wait_for_function("window.received.length > 0", timeout=15_000)
    first = received(page)[0]
    assert first["type"] == "initial_state", first
    assert {node["id"] for node in first["data"]["nodes"]} >= {"agent-1", "agent-2", "agent-3"}

    # and live events after it: a command's result is published on /ws
    marker = f"browser-{uuid.uuid4().hex[:8]}"
    command = {"type": "exec", "action": f"echo {marker}", "params": {"timeout": "10s"}}
    answer = coordinator.post("/api/v1/nodes/agent-1/commands", json=command)
    assert answer.status_code == 200, answer.text
    page.wait_for_function(
        "m => window.received.some(e => e.type === 'command_result'"
        " && JSON.stringify(e.data).includes(m))",
        arg=marker,
        timeout=15_000,
    )
    assert page.evaluate("window.errors") == 0
    assert page.evaluate("window.eventSource.readyState") == 1  # OPEN


def compose_folder_name(folder: str) -> str:
    """The project name compose makes of a folder's name (scripts/cluster-env does the same)."""
    kept = "".join(c for c in folder.lower() if c.isascii() and (c.isalnum() or c in "_-"))
    return kept.lstrip("_-")


def coordinator_logs(since: float) -> str:
    """The cluster coordinator container's log since ``since`` (a Unix time)."""
    client = docker.from_env(timeout=30)
    try:
        project = env_file_value("COMPOSE_PROJECT_NAME") or compose_folder_name(REPO.name)
        found = client.containers.list(
            filters={
                "label": [
                    f"com.docker.compose.project={project}",
                    "com.docker.compose.service=coordinator",
                ]
            }
        )
        assert found, f"no coordinator container of compose project {project!r} is running"
        logs: bytes = found[0].logs(since=int(since) - 1)
        return logs.decode(errors="replace")
    finally:
        client.close()


def test_a_page_from_an_unlisted_origin_is_refused_and_the_log_says_what_to_change(
    page: Page, page_port: int
) -> None:
    started = time.time()
    origin = f"http://{UNLISTED_HOST}:{page_port}"
    page.goto(f"{origin}/")
    # the browser blocks the answer: the stream fails and is closed, nothing is received
    page.wait_for_function("window.eventSource.readyState === 2", timeout=15_000)  # CLOSED
    assert received(page) == []
    assert page.evaluate("window.errors") >= 1

    deadline = time.monotonic() + 15
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = []
        for line in coordinator_logs(started).splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        refusals = [e for e in lines if repr(origin) in e.get("message", "")]
        if refusals:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"no refusal of {origin} in the coordinator's log; it logged: {lines[-10:]}")
    message = refusals[0]["message"]
    assert refusals[0]["level"] == "warning"
    assert "websocket.origins" in message and "LIGHTD_COORD_WEBSOCKET__ORIGINS" in message
    assert "http://localhost:*" in message  # what is allowed now


def test_a_newcomer_sees_the_three_agents_on_the_dashboard(
    page: Page, cluster_url: str, operator_token: str
) -> None:
    """What ``./scripts/up`` prints: the dashboard at ``/ui/``, signed in with the operator
    token, lists agent-1..3 without a reload (the page's own stream), within a minute."""
    page.goto(f"{cluster_url}/")
    expect(page.locator("#login")).to_be_visible(timeout=30_000)
    page.fill("#token", operator_token)
    page.click("#login-form button[type=submit]")
    for node in ("agent-1", "agent-2", "agent-3"):
        expect(page.locator(f'tr[data-node="{node}"]')).to_be_visible(timeout=60_000)
    expect(page.locator("#live")).to_have_text("live", timeout=30_000)
    screenshots = REPO / "tests" / "artifacts" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "cluster-fleet.png"))
