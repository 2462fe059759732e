"""Replacing a volume's content whole, with a journal that survives a SIGKILL at any point.

The volume's root may be a mount point (a loop-mounted image for the disk quota), so the root
itself is never renamed: its *children* are swapped, through a staging directory inside it
(:data:`~lightd_agent.backups.archive.STAGING`, on the same filesystem, so each move is one
atomic ``rename``)::

    <root>/.lightd-restore/new/   the archive, extracted and its checksum verified
    <root>/.lightd-restore/old/   the old content, moved aside during the swap

The journal ``<state_dir>/restores/<server>.json`` records the phase, written (fsync) before
each phase begins:

=============  ====================================================  ======================
phase          what happens                                          after a crash
=============  ====================================================  ======================
extracting     extract into ``new/``, verify the checksum            roll back: drop staging
swap-out       move every child of the root into ``old/``            roll forward: finish it
swap-in        move every child of ``new/`` into the root            roll forward: finish it
cleanup        delete ``old/`` and the staging directory             finish deleting
=============  ====================================================  ======================

So the root holds the old content whole until ``swap-out`` begins, and from then on the
recovery (:func:`recover`, run at the agent's next start before any server starts) always
completes the swap: the root ends with either the old content or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lightd_agent.backups.archive import KEPT, STAGING
from lightd_agent.backups.files import fsync_dir, write_atomic

__all__ = ["Journal", "Phase", "finish", "prepare", "recover", "recover_all", "staging"]

log = logging.getLogger(__name__)

Phase = Literal["extracting", "swap-out", "swap-in", "cleanup"]


@dataclass
class Journal:
    """The restore journal of one server's volume."""

    path: Path
    server: str
    backup: str
    root: str
    phase: Phase = "extracting"

    def write(self, phase: Phase) -> None:
        self.phase = phase
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        write_atomic(self.path, json.dumps(body).encode())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

    @classmethod
    def read(cls, path: Path) -> Journal:
        body = json.loads(path.read_bytes())
        return cls(
            path=path,
            server=str(body["server"]),
            backup=str(body["backup"]),
            root=str(body["root"]),
            phase=body["phase"],
        )


def staging(root: Path) -> Path:
    return root / STAGING


def prepare(journal: Journal) -> Path:
    """Write the journal (``extracting``) and make an empty ``new/``; where to extract."""
    root = Path(journal.root)
    journal.write("extracting")
    work = staging(root)
    if work.exists() or work.is_symlink():
        _remove(work)
    work.mkdir(mode=0o700)
    (work / "new").mkdir(mode=0o700)
    (work / "old").mkdir(mode=0o700)
    fsync_dir(root)
    return work / "new"


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _move_children(source: Path, dest: Path, *, skip: frozenset[str] = frozenset()) -> None:
    for name in sorted(os.listdir(source)):
        if name in skip:
            continue
        os.rename(source / name, dest / name)
    fsync_dir(source)
    fsync_dir(dest)


def _swap_out(root: Path) -> None:
    _move_children(root, staging(root) / "old", skip=KEPT)


def _swap_in(root: Path) -> None:
    _move_children(staging(root) / "new", root)


def _cleanup(journal: Journal) -> None:
    root = Path(journal.root)
    work = staging(root)
    if work.exists() or work.is_symlink():
        _remove(work)
    fsync_dir(root)
    journal.remove()


def finish(journal: Journal) -> None:
    """The archive is extracted and verified: swap it in, then clean up."""
    root = Path(journal.root)
    journal.write("swap-out")
    _swap_out(root)
    journal.write("swap-in")
    _swap_in(root)
    journal.write("cleanup")
    _cleanup(journal)


def roll_back(journal: Journal) -> None:
    """Extraction did not complete: drop the staging directory, keep the old content."""
    _cleanup(journal)


def recover(journal: Journal) -> str:
    """Leave the volume whole after a restore that was cut off; says which content it holds."""
    root = Path(journal.root)
    if journal.phase == "extracting":
        roll_back(journal)
        return "old"
    if journal.phase == "swap-out":
        (staging(root) / "old").mkdir(exist_ok=True)
        _swap_out(root)
        journal.write("swap-in")
    if journal.phase == "swap-in":
        _swap_in(root)
        journal.write("cleanup")
    _cleanup(journal)
    return "new"


def recover_all(directory: Path) -> list[tuple[Journal, str]]:
    """Recover every journal in ``directory``; what each volume holds now (``old``/``new``)."""
    done: list[tuple[Journal, str]] = []
    if not directory.is_dir():
        return done
    for path in sorted(directory.glob("*.json")):
        journal = Journal.read(path)
        was = journal.phase
        holds = recover(journal)
        log.warning(
            "a restore of server %s from backup %s was cut off (phase %s); the volume holds "
            "the %s content, whole",
            journal.server,
            journal.backup,
            was,
            holds,
            extra={"server": journal.server, "backup": journal.backup, "phase": was},
        )
        done.append((journal, holds))
    return done
