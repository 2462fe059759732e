"""Random JSON bodies on every endpoint that takes one: 2xx or 4xx, never a 500."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.coordinator.harness import coordinator, make_settings, node_body

KEYS = [
    "id", "name", "provider", "status", "address", "port", "labels", "capabilities",
    "health_url", "services", "type", "action", "params", "timeout", "user", "selector",
    "command", "node_id", "output", "duration", "finished", "data", "timestamp", "endpoint",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["active", "exec", "30s", "-1s", "2026-01-13T18:17:00Z", "node-1", ""])
    | st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(KEYS), values, max_size=8) | values

ENDPOINTS = [
    ("POST", "/api/v1/nodes"),
    ("PUT", "/api/v1/nodes/n"),
    ("POST", "/api/v1/nodes/n/heartbeat"),
    ("POST", "/api/v1/nodes/n/events"),
    ("POST", "/api/v1/commands/cmd_1_n/result"),
    ("POST", "/api/v1/nodes/n/commands"),  # a valid one goes to a closed port: failed at once
    ("POST", "/api/v1/commands"),
]


def test_random_bodies_never_cause_a_server_error() -> None:
    with (
        coordinator(make_settings(registry={"max_retries": 0})) as (base, _),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert client.post("/api/v1/nodes", json=node_body("n", 9)).status_code == 201

        @settings(
            max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
        def check(endpoint: tuple[str, str], body: object) -> None:
            method, path = endpoint
            response = client.request(method, path, json=body)
            assert response.status_code < 500, (method, path, body, response.text)
            if response.status_code == 201 and path == "/api/v1/nodes":
                client.post("/api/v1/nodes", json=node_body("n", 9))

        check()
