"""Backups of each server's volume (``storage.volumes_dir / <server id>``) and restores.

One idea per module:

- :mod:`.archive`   the archive writer (tar.gz, streamed, never leaving the volume)
- :mod:`.extract`   reading an archive back, every member checked, the checksum compared
- :mod:`.target`    the :class:`Target` interface; :mod:`.local` and :mod:`.s3` beside it
- :mod:`.store`     backup metadata, durable (one JSON file per backup)
- :mod:`.swap`      replacing a volume's content whole, journaled against a SIGKILL
- :mod:`.service`   :class:`BackupService`: create, list, get, download, restore, delete
- :mod:`.routes`    ``/containers/{id}/backups...``; :mod:`.commands` the ``backup.*`` commands
- :mod:`.subsystem` recovery at start (before servers start), cut-off at stop
"""

from lightd_agent.backups.service import BackupService, make_target
from lightd_agent.backups.subsystem import backups_subsystem
from lightd_agent.backups.target import Target, TargetError

__all__ = ["BackupService", "Target", "TargetError", "backups_subsystem", "make_target"]
