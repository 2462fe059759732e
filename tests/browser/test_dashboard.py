"""The dashboard in a real browser: sign in, the live fleet, a server's life, events, commands.

Against a real coordinator (auth on), a real ``lightd run`` agent and the real Docker engine.
Waits are conditions on the page (playwright's ``expect``), never fixed sleeps.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from jose import jwt
from playwright.sync_api import Page, expect

from lightd_coordinator.security import COORDINATOR_AUDIENCE
from lightd_shared.dispatch import DISPATCH_ISSUER
from tests.browser.conftest import SCREENSHOTS, Fleet
from tests.integration.fleet import JWT_SECRET, STATIC, operator

pytestmark = pytest.mark.docker


def sign_in(page: Page, base: str, token: str = STATIC) -> None:
    page.goto(f"{base}/")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def test_sign_in_refuses_a_wrong_token_then_opens_the_fleet(page: Page, fleet: Fleet) -> None:
    sign_in(page, fleet.base, "not-the-token")
    expect(page.locator("#login-error")).to_contain_text("Wrong token")
    expect(page.locator("#view")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "view-login.png"))
    page.fill("#token", STATIC)
    page.click("#login-form button[type=submit]")
    expect(page.locator(f'tr[data-node="{fleet.agent.node_id}"]')).to_be_visible(timeout=15_000)
    expect(page.locator("#live")).to_have_text("live")
    # the tab kept a JWT traded for the server token, never the server token itself
    kept = page.evaluate("sessionStorage.getItem('lightd.token')")
    assert kept and kept != STATIC and kept.count(".") == 2


def test_an_expired_or_forged_token_asks_to_sign_in_again(page: Page, fleet: Fleet) -> None:
    now = int(time.time())
    claims = {"iss": DISPATCH_ISSUER, "sub": "api-client", "aud": COORDINATOR_AUDIENCE}
    expired = jwt.encode({**claims, "iat": now - 120, "exp": now - 60}, JWT_SECRET, "HS256")
    page.goto(f"{fleet.base}/ui/")
    page.evaluate(f"sessionStorage.setItem('lightd.token', {expired!r})")
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("Your token has expired: sign in again.")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('lightd.token')") is None
    # a wrong token typed in: refused, with the coordinator's reason
    page.fill("#token", expired)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("That token has expired: get a new one.")
    forged = jwt.encode(
        {**claims, "iat": now, "exp": now + 60}, "another-secret-0123456789", "HS256"
    )
    page.fill("#token", forged)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong token")


def test_a_node_registered_through_the_api_comes_and_goes_live(page: Page, fleet: Fleet) -> None:
    sign_in(page, fleet.base)
    expect(page.locator(f'tr[data-node="{fleet.agent.node_id}"]')).to_be_visible(timeout=15_000)
    node_id = f"api-{uuid.uuid4().hex[:8]}"
    row = page.locator(f'tr[data-node="{node_id}"]')
    with operator(fleet.base) as client:
        body = {
            "id": node_id,
            "address": "127.0.0.1",
            "port": 9,
            "labels": {"zone": "dash"},
        }
        assert client.post("/api/v1/nodes", json=body).status_code == 201
        expect(row).to_be_visible(timeout=5_000)
        expect(row).to_contain_text("zone=dash")
        page.fill("#filter-label", "zone=dash")
        expect(page.locator("#fleet-rows tr")).to_have_count(1)
        page.fill("#filter-label", "")
        assert client.delete(f"/api/v1/nodes/{node_id}").status_code == 200
        expect(row).to_have_count(0, timeout=5_000)


def test_a_server_from_the_form_runs_logs_charts_and_stops(page: Page, fleet: Fleet) -> None:
    node = fleet.agent.node_id
    server = f"dash-{uuid.uuid4().hex[:6]}"
    sign_in(page, fleet.base)
    expect(page.locator(f'tr[data-node="{node}"]')).to_be_visible(timeout=15_000)
    page.goto(f"{fleet.base}/ui/#/node/{node}")
    expect(page.locator("#servers-note")).not_to_have_text("loading servers…", timeout=30_000)

    # the coordinator's validation error shows at its field
    page.fill("#spec-id", server)
    page.fill("#spec-image", "lightd-test-busybox")
    page.fill("#spec-memory", "1x")
    page.click("#create-submit")
    expect(page.locator("#error-memory")).to_contain_text("invalid memory limit")

    page.fill("#spec-memory", "64m")
    page.fill(
        "#spec-startup_command",
        "httpd -p 8080; i=0; while true; do echo dashboard line $i; i=$((i+1)); sleep 0.5; done",
    )
    page.fill("#spec-ports", "8080")
    page.click("#create-submit")
    row = page.locator(f'tr[data-server="{server}"]')
    expect(row.locator("[data-state]")).to_have_text("running", timeout=60_000)
    expect(row.locator('button[data-action="start"]')).to_be_disabled()
    expect(row.locator('button[data-action="stop"]')).to_be_enabled()
    # CPU and memory now: the newest sample of the history the agent reports
    expect(row.locator("td").nth(4)).to_contain_text("%", timeout=20_000)
    expect(row.locator("td").nth(5)).to_contain_text("iB", timeout=20_000)
    page.screenshot(path=str(SCREENSHOTS / "view-node.png"), full_page=True)

    # the agent's refusals show at their field too: the same id again, a host port in use
    page.fill("#spec-id", server)
    page.fill("#spec-image", "lightd-test-busybox")
    page.click("#create-submit")
    expect(page.locator("#error-id")).to_contain_text("already exists")
    published = re.search(r"(\d+)→8080/tcp", row.locator("td").nth(3).inner_text())
    assert published, row.inner_text()
    page.fill("#spec-id", f"{server}-b")
    page.fill("#spec-ports", f"8080:{published.group(1)}")
    page.click("#create-submit")
    expect(page.locator("#error-ports")).to_contain_text("already in use")
    expect(page.locator("#error-id")).to_have_text("")

    page.click(f'tr[data-server="{server}"] a')
    expect(page.locator("#state")).to_have_text("running", timeout=15_000)
    expect(page.locator("#log")).to_contain_text("dashboard line 3", timeout=30_000)
    cpu = page.locator('[data-chart="CPU %"] polyline')
    expect(cpu).to_have_attribute("data-points", re.compile(r"^([3-9]|\d\d+)$"), timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "view-server.png"), full_page=True)

    page.goto(f"{fleet.base}/ui/#/services")
    endpoint = page.locator(f'tr[data-service="{server}"] a[href^="http://"]')
    expect(endpoint).to_be_visible(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "view-services.png"), full_page=True)

    page.goto(f"{fleet.base}/ui/#/node/{node}")
    page.click(f'tr[data-server="{server}"] button[data-action="stop"]')
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")
    expect(row.locator('button[data-action="stop"]')).to_be_disabled()
    expect(row.locator("[data-state]")).to_have_text("stopped", timeout=60_000)
    expect(row.locator('button[data-action="start"]')).to_be_enabled()

    page.goto(f"{fleet.base}/ui/#/events")
    page.fill("#events-node", node)
    feed = page.locator("#feed")
    expect(feed.locator('li[data-type="server_update"]').first).to_be_visible(timeout=15_000)
    expect(feed).to_contain_text(f"{server}: running")
    expect(feed).to_contain_text(f"{server}: stopped", timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "view-events.png"))

    # delete asks first; cancelled, nothing happens; confirmed, the server goes
    page.goto(f"{fleet.base}/ui/#/node/{node}")
    delete = row.locator('button[data-action="delete"]')
    delete.click()
    page.click("#confirm button[value=cancel]")
    expect(row.locator("[data-state]")).to_have_text("stopped")
    delete.click()
    page.click("#confirm-ok")
    expect(row).to_have_count(0, timeout=30_000)
    with operator(fleet.base) as client:
        gone = client.get(f"/api/v1/nodes/{node}/containers/{server}").json()
        assert gone["status"] == "failed" and "no server" in gone["output"]


def test_a_commands_result_shows_as_it_comes(page: Page, fleet: Fleet) -> None:
    node = fleet.agent.node_id
    sign_in(page, fleet.base)
    expect(page.locator(f'tr[data-node="{node}"]')).to_be_visible(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "view-fleet.png"), full_page=True)
    page.goto(f"{fleet.base}/ui/#/commands")
    page.select_option("#cmd-target", "selector")
    page.fill("#cmd-where", f"role={node.split('-')[0]}")
    page.select_option("#cmd-type", "exec")
    page.fill("#cmd-action", "echo hello from the dashboard")
    page.click("#cmd-send")
    result = page.locator(f'#cmd-results tr[data-node="{node}"]')
    expect(result.locator("[data-state]")).to_have_text("success", timeout=30_000)
    expect(result).to_contain_text("hello from the dashboard")
    page.screenshot(path=str(SCREENSHOTS / "view-commands.png"), full_page=True)


def test_the_page_fits_a_phone_and_holds_no_secret(page: Page, fleet: Fleet) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, fleet.base)
    expect(page.locator(f'tr[data-node="{fleet.agent.node_id}"]')).to_be_visible(timeout=15_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    page.screenshot(path=str(SCREENSHOTS / "view-phone.png"), full_page=True)
    for view, ready in (
        (f"node/{fleet.agent.node_id}", "#create-form"),
        ("events", "#feed"),
        ("commands", "#cmd-send"),
        ("services", "#services"),
    ):
        page.goto(f"{fleet.base}/ui/#/{view}")
        expect(page.locator(ready)).to_be_attached()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"#/{view} is {width}px wide on a 390px screen"
    # the shell and assets need no token; the data does
    for path in ("/ui/", "/ui/app.js", "/ui/app.css"):
        response = httpx.get(f"{fleet.base}{path}")
        assert response.status_code == 200
        assert STATIC not in response.text
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert httpx.get(f"{fleet.base}/api/v1/nodes").status_code == 401
    assert httpx.get(f"{fleet.base}/", follow_redirects=False).headers["location"] == "/ui/"
    assert httpx.get(f"{fleet.base}/ui/nothing.js").status_code == 404


def test_the_install_output_shows_while_installing(page: Page, fleet: Fleet) -> None:
    node = fleet.agent.node_id
    server = f"inst-{uuid.uuid4().hex[:6]}"
    sign_in(page, fleet.base)
    expect(page.locator(f'tr[data-node="{node}"]')).to_be_visible(timeout=15_000)
    spec = {
        "id": server,
        "image": "lightd-test-busybox",
        "install_script": "i=0; while [ $i -lt 40 ]; do echo install step $i; i=$((i+1)); "
        "sleep 0.25; done",
        "startup_command": "echo server up; sleep 3600",
    }
    with operator(fleet.base) as client:
        created = client.post(f"/api/v1/nodes/{node}/containers", json=spec)
        assert created.json()["status"] == "success", created.text
        try:
            page.goto(f"{fleet.base}/ui/#/server/{node}/{server}")
            expect(page.locator("#log-title")).to_have_text("Install output", timeout=10_000)
            expect(page.locator("#log")).to_contain_text("install step 3", timeout=15_000)
            expect(page.locator("#state")).to_have_text("installing")
            page.screenshot(path=str(SCREENSHOTS / "view-install.png"), full_page=True)
            # then the server runs and the log follows its own output
            expect(page.locator("#state")).to_have_text("running", timeout=60_000)
            expect(page.locator("#log-title")).to_have_text("Live log", timeout=15_000)
            expect(page.locator("#log")).to_contain_text("server up", timeout=15_000)
        finally:
            client.delete(f"/api/v1/nodes/{node}/containers/{server}", params={"volumes": True})
