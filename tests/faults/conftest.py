"""The fault suite's fixtures: the recording remote the agents report to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remote.recorder import RemoteServer, running_remote


@pytest.fixture
def remote() -> Iterator[RemoteServer]:
    yield from running_remote()
