"""The activity log: who did what through the coordinator, and how it ended.

::

    context.py     a request's id and caller, as the request runs (a context variable)
    actions.py     which API calls are recorded, and the action word of each
    middleware.py  records each mutating API call once it has answered
    log.py         ActivityLog: what an entry holds (and never holds), paging, retention
    base.py        ActivityStore, the storage interface; memory.py, sqlite.py, redis.py

:func:`create_activity_store` picks the store after ``registry.provider``, as the resource
history does; the schemas are :mod:`lightd_shared.activity`.
"""

from __future__ import annotations

from lightd_coordinator.activity.base import ActivityStore
from lightd_coordinator.activity.log import ActivityLog
from lightd_coordinator.activity.memory import MemoryActivityStore
from lightd_coordinator.activity.sqlite import SqliteActivityStore
from lightd_coordinator.config import RegistrySettings

__all__ = [
    "ActivityLog",
    "ActivityStore",
    "MemoryActivityStore",
    "SqliteActivityStore",
    "create_activity_store",
]


def create_activity_store(settings: RegistrySettings) -> ActivityStore:
    """The store beside the registry: the registry's sqlite file, its Redis, else memory."""
    if settings.provider == "sqlite":
        return SqliteActivityStore(settings.path)
    if settings.provider == "redis":
        # imported only then, as the redis registry is
        from lightd_coordinator.activity.redis import RedisActivityStore

        return RedisActivityStore(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryActivityStore()
