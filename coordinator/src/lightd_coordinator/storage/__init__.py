"""The connection code every store of the coordinator shares, written once.

The registry, the resource history and the activity log each keep their data in the store
``registry.provider`` names; their ``sqlite`` and ``redis`` implementations open their
connection through this package:

- ``storage/sqlite.py``  :class:`SqliteFile`: one connection to the registry's file behind a
  lock, each operation one transaction in a worker thread; the file is created owner-only;
- ``storage/redis.py``   :class:`RedisConnection`: a client of ``registry.redis_url`` with the
  store's Lua scripts registered, and :func:`guarded`, which turns "Redis cannot be reached"
  into :class:`~lightd_coordinator.registry.base.RegistryUnavailable` naming the URL with its
  password masked.

Imported by module (``lightd_coordinator.storage.redis``), so that redis-py is imported only
when a Redis store is used.
"""

__all__: list[str] = []
