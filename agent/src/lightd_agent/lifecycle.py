"""Servers' lifecycle, kept as an import path: the code lives in :mod:`lightd_agent.servers`."""

from lightd_agent.servers import Server, ServerManager

__all__ = ["Server", "ServerManager"]
