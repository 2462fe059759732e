"""A real browser (Debian's chromium, driven by playwright) against a real coordinator and agent.

Never a downloaded browser: ``/usr/bin/chromium`` (``.ci/run`` installs it). Missing, the tests
FAIL. Every test saves a screenshot under ``tests/artifacts/screenshots/`` (CI keeps it).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from lightd_coordinator.config import Settings
from tests.integration.fleet import (
    AgentProcess,
    agent_document,
    coordinator_settings,
    run_agent,
    running_coordinator,
)

# Assertions wait on a condition, never a fixed time; on a loaded 2-core CI machine a page that
# filters 10,000 nodes can take longer than playwright's default of 5 s to settle.
expect.set_options(timeout=20_000)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: playwright's sync API runs an event loop in this thread while it is open,
    so it must be closed before other tests call ``asyncio.run``."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; "
            ".ci/run does it). The browser tests never download a browser."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        try:
            yield launched
        finally:
            launched.close()


def dashboard_settings() -> Settings:
    settings = coordinator_settings()
    # the agent below reports every 500 ms; keep every sample
    settings.registry.stats_min_interval = settings.registry.health_check_interval
    return settings


class Fleet:
    def __init__(self, base: str, agent: AgentProcess) -> None:
        self.base = base
        self.agent = agent


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Fleet]:
    """A coordinator with auth on and one real ``lightd run`` agent on the real Docker engine."""
    tmp = tmp_path_factory.mktemp("dashboard")
    with running_coordinator(dashboard_settings()) as base:
        node_id = f"web-{uuid.uuid4().hex[:8]}"
        document: dict[str, Any] = agent_document(tmp, base, node_id, allow_exec=True)
        document["coordinator"]["stats_interval"] = "500ms"
        agent = run_agent(tmp, document)
        try:
            yield Fleet(base, agent)
        finally:
            agent.stop()
            for container in docker_client.containers.list(
                all=True, filters={"label": f"lightd.node={node_id}"}
            ):
                container.remove(force=True, v=True)
            for volume in docker_client.volumes.list(filters={"label": f"lightd.node={node_id}"}):
                volume.remove(force=True)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage); its screenshot is saved whatever happens."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert errors == [], f"the page threw: {errors}"
