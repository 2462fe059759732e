"""A 405 from the agent names in ``Allow`` every method the path answers."""

from __future__ import annotations

import re

import pytest

from tests.agent.conftest import Agent

pytestmark = pytest.mark.docker

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def test_405_allow_lists_every_method_of_the_path(agent: Agent) -> None:
    paths = {
        template: {method.upper() for method in operations}
        for template, operations in agent.app.openapi()["paths"].items()
    }
    checked = 0
    for template in paths:
        path = re.sub(r"\{[^}]+\}", "s1", template)
        answered = {
            method
            for other, methods in paths.items()
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", other), path)
            for method in methods
        }
        for method in METHODS:
            if method in answered:
                continue
            response = agent.client.request(method, path)
            assert response.status_code == 405, (method, path, response.status_code)
            assert set(response.headers["allow"].split(", ")) == answered, (method, path)
            checked += 1
    assert checked > 40
