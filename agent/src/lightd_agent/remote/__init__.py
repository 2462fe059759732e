"""Remote sync (seed 000) with a durable outbox: no lifecycle update is ever lost.

- :mod:`.mapping`   lifecycle event -> the seed's ``/update`` body
- :mod:`.outbox`    SQLite outbox: pending updates, per-server sequences, dead letters
- :mod:`.client`    the HTTP calls to the remote (``/update``, ``/health``, ``/config``)
- :mod:`.retry`     backoff with jitter and ``Retry-After``
- :mod:`.journal`   where an update is written to the outbox (durable listener, gate)
- :mod:`.delivery`  where it is sent: one task per server, ``classify`` the response policy
- :mod:`.health`    the remote's health loop
- :mod:`.pause`     the remote's state and the delivery pause, as values
- :mod:`.config_sync`  config pull and push
- :mod:`.sync`      :class:`RemoteSync`, the facade over them
- :mod:`.subsystem` remote sync started and stopped with the agent
- :mod:`.routes`    the agent's ``/remote/...`` API
- :mod:`.cli`       ``lightd remote ...``
"""

from lightd_agent.remote.sync import RemoteSync

__all__ = ["RemoteSync"]
