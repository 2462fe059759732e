"""Servers: one module per idea of a server's life.

- :mod:`.model`     the ``Server`` record and the registry of all of them
- :mod:`.machine`   the states, the transitions table, the one function that moves a server
- :mod:`.install`   create, install, reinstall
- :mod:`.power`     start, stop, restart, kill (per-server lock)
- :mod:`.crash`     container exits -> crashes; the restart policy
- :mod:`.recovery`  state files against Docker at start and after Docker loss
- :mod:`.observe`   logs, stats, exec
- :mod:`.manager`   ``ServerManager`` ties them together
"""

from lightd_agent.servers.machine import STATES, TRANSITIONS, Cause, IllegalTransition, Machine
from lightd_agent.servers.manager import ServerManager
from lightd_agent.servers.model import Server

__all__ = [
    "STATES",
    "TRANSITIONS",
    "Cause",
    "IllegalTransition",
    "Machine",
    "Server",
    "ServerManager",
]
