"""The ``backup.*`` container commands: the same service as the REST routes.

``backup.create`` answers the new backup (``running``), ``backup.list`` the list,
``backup.get`` and ``backup.restore`` the backup's metadata (for a restore: ``last_restore``
``running``), ``backup.delete`` the removal. Lifecycle refusals (503) and agent errors end the
command ``failed`` with their message, as the other container actions do.
"""

from __future__ import annotations

from lightd_agent.backups.service import BackupService
from lightd_shared.backups import BackupInfo, BackupList, BackupRemoved
from lightd_shared.commands import BackupCommand, CreateBackupCommand

__all__ = ["run_backup_command", "summary"]


def summary(answer: BackupInfo | BackupList | BackupRemoved) -> str:
    if isinstance(answer, BackupList):
        return f"{answer.count} backup(s)"
    if isinstance(answer, BackupRemoved):
        return f"backup {answer.backup} of {answer.server}: deleted"
    line = f"backup {answer.id} of {answer.server}: {answer.state}"
    if answer.last_restore is not None:
        line += f", restore {answer.last_restore.state}"
    return line + (f" ({answer.error})" if answer.error else "")


async def run_backup_command(
    service: BackupService, typed: CreateBackupCommand | BackupCommand
) -> tuple[str, BackupInfo | BackupList | BackupRemoved]:
    """Run one ``backup.*`` command; its one line for people and its typed answer."""
    params = typed.params
    answer: BackupInfo | BackupList | BackupRemoved
    if isinstance(typed, CreateBackupCommand):
        if typed.action == "backup.create":
            answer = await service.create(params.server, typed.params.ignore)
        else:
            found = service.listing(params.server)
            answer = BackupList(backups=found, count=len(found))
    elif typed.action == "backup.get":
        answer = service.get(params.server, typed.params.backup)
    elif typed.action == "backup.restore":
        answer = await service.restore(params.server, typed.params.backup)
    else:
        await service.delete(params.server, typed.params.backup)
        answer = BackupRemoved(backup=typed.params.backup, server=params.server)
    return summary(answer), answer
