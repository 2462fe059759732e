"""Fixtures for the smoke test of the running compose cluster (``./scripts/up``).

The cluster is not started here: ``.ci/run`` (and a person) brings it up with ``./scripts/up``,
runs ``pytest -m cluster tests/cluster`` and tears it down with ``./scripts/down``. With no
cluster up, every test fails (never skips) and says how to start one.

Where the coordinator is: ``LIGHTD_CLUSTER_URL`` (default ``http://127.0.0.1:3001``, or the port
in ``.env``); the operator token: ``LIGHTD_COORD_TOKEN``, else ``LIGHTD_OPERATOR_TOKEN`` in the
``.env`` that ``./scripts/up`` wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / ".env"
NODES = ("agent-1", "agent-2", "agent-3")


def env_file_value(key: str) -> str | None:
    """A value from the cluster's ``.env`` (None when the file or the key is missing)."""
    if not ENV_FILE.is_file():
        return None
    for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


@pytest.fixture(scope="session")
def cluster_url() -> str:
    explicit = os.environ.get("LIGHTD_CLUSTER_URL")
    if explicit:
        return explicit.rstrip("/")
    bind = env_file_value("LIGHTD_COORD_BIND") or "127.0.0.1"
    port = env_file_value("LIGHTD_COORD_PORT") or "3001"
    return f"http://{bind}:{port}"


@pytest.fixture(scope="session")
def operator_token() -> str:
    token = os.environ.get("LIGHTD_COORD_TOKEN") or env_file_value("LIGHTD_OPERATOR_TOKEN")
    if not token:
        pytest.fail(
            "no operator token: set LIGHTD_COORD_TOKEN, or bring the cluster up with "
            "./scripts/up (it writes LIGHTD_OPERATOR_TOKEN to .env)"
        )
    return token


@pytest.fixture(scope="session")
def coordinator(cluster_url: str, operator_token: str) -> Iterator[httpx.Client]:
    """An authenticated client for the cluster's coordinator; fails when it does not answer."""
    client = httpx.Client(
        base_url=cluster_url,
        headers={"Authorization": f"Bearer {operator_token}"},
        timeout=60,
        trust_env=False,
    )
    try:
        health = client.get("/health", timeout=5)
    except httpx.HTTPError as exc:
        client.close()
        pytest.fail(
            f"the cluster's coordinator does not answer at {cluster_url} ({exc!r}); "
            "bring the cluster up with ./scripts/up first"
        )
    assert health.status_code == 200, f"{cluster_url}/health answered {health.status_code}"
    try:
        yield client
    finally:
        client.close()
