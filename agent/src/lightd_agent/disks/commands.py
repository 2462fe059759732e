"""The coordinator's ``quota.get`` and ``quota.resize`` container commands, on the same code as
``GET /volumes/{id}/quota`` and ``POST /volumes/{id}/resize``."""

from __future__ import annotations

from lightd_agent.servers.quota import Quotas
from lightd_shared.commands import QuotaGetCommand, QuotaResizeCommand
from lightd_shared.quota import QuotaView

__all__ = ["run_quota_command", "summary"]


async def run_quota_command(
    quotas: Quotas, command: QuotaGetCommand | QuotaResizeCommand
) -> QuotaView:
    """The typed answer of one quota command (agent errors raise, as for every action)."""
    if isinstance(command, QuotaResizeCommand):
        return await quotas.resize(command.params.server, command.params.size)
    quotas.registry.get(command.params.server)
    return await quotas.quota(command.params.server)


def summary(server: str, view: QuotaView) -> str:
    """The one line for people beside the typed answer."""
    return (
        f"{server}: {view.used_mb} of {view.size_mb} MB used ({view.percentage_used:g}%), "
        f"{view.available_mb} MB available (limit {view.limit_mb} MB)"
    )
