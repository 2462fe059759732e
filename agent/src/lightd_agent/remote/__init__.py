"""Remote sync (seed 000) with a durable outbox: no lifecycle update is ever lost.

- :mod:`.mapping`   lifecycle event -> the seed's ``/update`` body
- :mod:`.outbox`    SQLite outbox: pending updates, per-server sequences, dead letters
- :mod:`.client`    the HTTP calls to the remote (``/update``, ``/health``, ``/config``)
- :mod:`.retry`     backoff with jitter and ``Retry-After``
- :mod:`.sync`      :class:`RemoteSync`: durable listener, gate, delivery and health loops
- :mod:`.routes`    the agent's ``/remote/...`` API
- :mod:`.cli`       ``lightd remote ...``
"""

from lightd_agent.remote.sync import RemoteSync

__all__ = ["RemoteSync"]
