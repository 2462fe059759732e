"""The durable ledger of command ids: a command id runs at most once (``POST /commands``).

:class:`CommandLedger` makes a command id run at most once: a repeat (the coordinator retrying,
or anyone replaying a captured request while its token is still valid) gets the first result.
:class:`SeenCommands` keeps every command id it took, with its result, on disk
(``<state_dir>/commands.db``) until its token can no longer pass (``exp`` plus
:data:`TOKEN_SKEW`), so a request replayed after the agent restarted does not run again either:
it gets the stored result, or, for a command that was still running when the agent stopped, a
``failed`` result that says so.

What a command does is :class:`lightd_agent.commands.CommandRunner`'s business; the ledger only
decides whether it runs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from lightd_agent.commands import CommandRunner
from lightd_agent.errors import Unavailable
from lightd_shared.commands import CommandResult
from lightd_shared.dispatch import AgentCommand
from lightd_shared.timestamps import utcnow

__all__ = ["SEEN_COMMANDS_FILE", "TOKEN_SKEW", "CommandLedger", "SeenCommands"]

log = logging.getLogger(__name__)

_LEDGER_SIZE = 1000
TOKEN_SKEW = 60.0
"""Seconds a seen command id is kept past its token's ``exp``: more than the verifier's leeway
and any clock step between the coordinator and this host."""
SEEN_COMMANDS_FILE = "commands.db"


class SeenCommands:
    """The command ids this agent took, on disk, each until its token can no longer pass.

    One SQLite table ``seen(id, expires, result)``: a row is written (and synced) *before* the
    command runs, its result after; rows whose ``expires`` (wall clock) passed are dropped.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._clock = clock
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen "
            "(id TEXT PRIMARY KEY, expires REAL NOT NULL, result TEXT)"
        )

    def lookup(self, command_id: str) -> tuple[bool, CommandResult | None]:
        """``(seen, result)``: whether the id was taken before, and its result if it ended."""
        row = self._db.execute(
            "SELECT result FROM seen WHERE id = ? AND expires >= ?", (command_id, self._clock())
        ).fetchone()
        if row is None:
            return False, None
        return True, None if row[0] is None else CommandResult.model_validate_json(row[0])

    def start(self, command_id: str, token_expires: float) -> None:
        """Record the id before the command runs (raises :class:`OSError`-like errors)."""
        now = self._clock()
        with self._db:
            self._db.execute("DELETE FROM seen WHERE expires < ?", (now,))
            self._db.execute(
                "INSERT OR REPLACE INTO seen (id, expires, result) VALUES (?, ?, NULL)",
                (command_id, max(token_expires, now) + TOKEN_SKEW),
            )

    def finish(self, result: CommandResult) -> None:
        self._db.execute(
            "UPDATE seen SET result = ? WHERE id = ?", (result.model_dump_json(), result.id)
        )

    def close(self) -> None:
        self._db.close()


def _lost_result(command: AgentCommand, node_id: str) -> CommandResult:
    return CommandResult(
        id=command.id,
        node_id=node_id,
        status="failed",
        output=(
            f"command {command.id} was already received before this agent restarted and is "
            "not run again; its result was lost with the restart"
        ),
        duration=timedelta(0),
        finished=utcnow(),
    )


class CommandLedger:
    """Command id -> its run; a repeated id waits for (or gets) the first run's result.

    With ``seen`` (:class:`SeenCommands`), ids are also remembered across restarts.
    """

    def __init__(
        self, runner: CommandRunner, size: int = _LEDGER_SIZE, *, seen: SeenCommands | None = None
    ) -> None:
        self.runner = runner
        self.size = size
        self.seen = seen
        self._runs: OrderedDict[str, asyncio.Task[CommandResult]] = OrderedDict()

    async def submit(
        self, command: AgentCommand, token_expires: float | None = None
    ) -> tuple[CommandResult, bool]:
        """The command's result, and whether this call ran it (``False``: a repeat).

        ``token_expires`` (the token's ``exp``, epoch seconds) says how long the id must be
        remembered on disk.
        """
        task = self._runs.get(command.id)
        fresh = task is None
        if task is None and self.seen is not None:
            try:
                seen, earlier = self.seen.lookup(command.id)
            except (sqlite3.Error, OSError, ValueError) as exc:
                raise Unavailable(
                    f"cannot read the commands already run ({exc}); command {command.id} was "
                    "not run, try again once the agent's state directory is readable"
                ) from None
            if seen:
                log.warning(
                    "command %s was received again after a restart; not run again",
                    command.id,
                    extra={"command_id": command.id},
                )
                return earlier or _lost_result(command, self.runner.node_id), False
            try:
                self.seen.start(command.id, token_expires or time.time())
            except (sqlite3.Error, OSError) as exc:
                raise Unavailable(
                    f"cannot record command {command.id} before running it ({exc}); it was not "
                    "run, try again once the agent's state directory is writable"
                ) from None
        if task is None:
            task = asyncio.create_task(self._run(command), name=f"command-{command.id}")
            self._runs[command.id] = task
            while len(self._runs) > self.size:
                oldest_id, oldest = next(iter(self._runs.items()))
                if not oldest.done():
                    break
                del self._runs[oldest_id]
        # shield: a caller that hangs up does not cut the command off half-way
        return await asyncio.shield(task), fresh

    async def _run(self, command: AgentCommand) -> CommandResult:
        result = await self.runner.run(command)
        if self.seen is not None:
            try:
                self.seen.finish(result)
            except (sqlite3.Error, OSError):
                log.exception("could not keep the result of command %s", command.id)
        return result

    async def close(self) -> None:
        running = [task for task in self._runs.values() if not task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self.seen is not None:
            self.seen.close()
