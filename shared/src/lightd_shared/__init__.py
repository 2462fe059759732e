"""lightd's wire schemas: the one copy of every payload that crosses a process boundary.

Both programs import from here and nowhere else:

- ``remote``      remote-sync bodies (seed 000): ``/update``, ``/health``, ``/config``
- ``nodes``       the coordinator's node registry bodies (seed 003)
- ``commands``    command requests and results
- ``dispatch``    coordinator -> agent ``POST /commands`` (body, token claims) and fan-out
- ``services``    service discovery
- ``monitoring``  coordinator ``/health`` and ``/metrics``
- ``events``      the SSE envelope ``{type, timestamp, data}``
- ``containers``  the agent's container ("server") API
- ``stats``       stats reports (agent -> coordinator), the resource history, the log follow
- ``durations`` / ``timestamps``  the seeds' duration (``"2h30m15s"``) and RFC 3339 ``Z`` forms
- ``base``        the two model bases: ``Payload`` (peer-sent, unknown fields ignored) and
                  ``Request`` (operator-sent, unknown fields rejected)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lightd-shared")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
