"""Every agent route reaches the agent through ``AgentDep`` (``api/deps.get_agent``), never by
reading ``request.app.state`` itself: one typed way in, as the coordinator's routes do."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant

from lightd_agent.api import deps
from lightd_agent.app import create_app
from lightd_agent.backend.memory import MemoryBackend
from lightd_agent.config import AgentConfig
from lightd_shared.routing import _routes
from tests.agent.conftest import TOKEN


def _takes_request(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    """The calls of the dependency tree that are handed the raw ``Request``."""
    if dependant.request_param_name is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _takes_request(sub)


def test_no_route_reads_the_request_for_the_agent(tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {
            "authorization": {"token": TOKEN},
            "storage": {"base_path": str(tmp_path)},
            "node": {"id": "route-deps"},
            "coordinator": {"url": "http://127.0.0.1:9", "token": "lightd_" + "e" * 32},
        }
    )
    app = create_app(config, backend=MemoryBackend())
    routes = [route for route in _routes(app.router.routes) if hasattr(route, "dependant")]
    assert len(routes) > 10
    # get_agent is the one door: a dependency may take the request (for its path, say), but
    # never reads the agent off it
    readers = {
        f"{route.path} {sorted(route.methods)}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in _takes_request(route.dependant)
        if call is not deps.get_agent and _reads_the_agent(call)
    }
    assert readers == set()
    # the routes that used to read it themselves now have the dependency
    for path in ("/commands", "/health", "/remote/status"):
        route = next(route for route in routes if route.path == path)
        assert deps.get_agent in set(_calls(route.dependant)), path


def _reads_the_agent(call: Callable[..., Any] | None) -> bool:
    try:
        source = inspect.getsource(call)  # type: ignore[arg-type]
    except (TypeError, OSError):  # a class instance such as HTTPBearer: not ours
        return False
    return "app.state" in source or "get_agent(" in source


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)
