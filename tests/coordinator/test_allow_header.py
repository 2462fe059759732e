"""A 405 names in ``Allow`` every method the path answers, not only the first route's."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from lightd_coordinator.main import create_app
from tests.coordinator.harness import coordinator, make_settings

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def _paths() -> dict[str, set[str]]:
    document = create_app(make_settings()).openapi()
    return {
        template: {method.upper() for method in operations}
        for template, operations in document["paths"].items()
    }


PATHS = _paths()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with coordinator() as (url, _):
        yield url


@pytest.mark.parametrize("template", sorted(PATHS))
def test_405_allow_lists_every_method_of_the_path(base: str, template: str) -> None:
    path = re.sub(r"\{[^}]+\}", "n1", template)
    # every template this path matches (".../{server}/logs" is also ".../{server}/{action}")
    answered = {
        method
        for other, methods in PATHS.items()
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", other), path)
        for method in methods
    }
    for method in METHODS:
        if method in answered:
            continue
        response = httpx.request(method, f"{base}{path}")
        assert response.status_code == 405, (method, path, response.status_code)
        assert set(response.headers["allow"].split(", ")) == answered, (method, path)
