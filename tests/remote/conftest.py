"""Fixtures for remote-sync tests: the recording remote, and RemoteSync instances on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lightd_agent.events import EventBus
from lightd_agent.remote.sync import RemoteSync
from lightd_shared.remote import RemoteSettings
from tests.remote.recorder import RemoteServer, running_remote

REMOTE_TOKEN = "lightd_ad2f7fc49ed640429c450e14ed07c8d5"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def remote() -> Iterator[RemoteServer]:
    yield from running_remote()


def settings_for(url: str, **overrides: Any) -> RemoteSettings:
    """Remote settings with short intervals, so tests never wait long."""
    document: dict[str, Any] = {
        "enabled": True,
        "url": url,
        "token": REMOTE_TOKEN,
        "timeout": "1s",
        "health_interval": "200ms",
        "retry_max_delay": "500ms",
        **overrides,
    }
    return RemoteSettings.model_validate(document)


SyncFactory = Callable[..., RemoteSync]


@pytest.fixture
async def make_sync(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Build, attach and start a RemoteSync on a fresh bus; everything stops on teardown."""
    made: list[RemoteSync] = []

    async def factory(
        settings: RemoteSettings, *, bus: EventBus | None = None, **kwargs: Any
    ) -> tuple[RemoteSync, EventBus]:
        bus = bus or EventBus()
        sync = RemoteSync(settings, kwargs.pop("state_dir", tmp_path / "state"), **kwargs)
        sync.attach(bus)
        await sync.start()
        made.append(sync)
        return sync, bus

    yield factory
    for sync in made:
        await sync.stop()
        sync.close()
