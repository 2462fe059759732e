"""One way for tests to register a node with a coordinator: ``register(base_or_client, id)``."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["node_body", "register"]


def node_body(node_id: str, port: int, **extra: Any) -> dict[str, Any]:
    """A registration body for ``POST /api/v1/nodes`` (loopback address, docker provider)."""
    return {
        "id": node_id,
        "name": f"Node {node_id}",
        "provider": "docker",
        "status": "active",
        "address": "127.0.0.1",
        "port": port,
        **extra,
    }


def register(
    target: str | httpx.Client,
    node_id: str,
    port: int = 9,
    *,
    expect: tuple[int, ...] = (200, 201),
    **extra: Any,
) -> httpx.Response:
    """Register ``node_id`` (``target``: the coordinator's base URL or a client on it); the
    answer's status must be one of ``expect`` (``(201,)``: a node new to the registry)."""
    body = node_body(node_id, port, **extra)
    if isinstance(target, httpx.Client):
        response = target.post("/api/v1/nodes", json=body)
    else:
        response = httpx.post(f"{target}/api/v1/nodes", json=body)
    assert response.status_code in expect, response.text
    return response
