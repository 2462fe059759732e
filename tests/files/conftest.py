"""The file routes' tests reuse the agent's fixtures: a real agent on loopback, the real engine."""

from __future__ import annotations

from tests.agent.conftest import agent, anyio_backend, make_agent

__all__ = ["agent", "anyio_backend", "make_agent"]
