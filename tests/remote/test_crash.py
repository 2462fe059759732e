"""Remote down, the agent process killed with SIGKILL, restarted, remote back: nothing lost.

The child process (``tests.remote.publisher``) is a real process with the real bus, RemoteSync
and SQLite outbox; it is killed with ``kill -9`` while updates are undelivered.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.remote.processes import close_streams, read_line, sigkill, wait_for
from tests.remote.recorder import RemoteServer

SERVERS = [f"srv-{n}" for n in range(5)]


def _start(state_dir: Path, url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.remote.publisher", str(state_dir), url, *SERVERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    assert read_line(process.stdout) == "ready"
    return process


def _command(process: subprocess.Popen[str], line: str) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()
    return read_line(process.stdout)


def test_sigkill_with_remote_down_loses_nothing_and_resends_no_acked_update(
    remote: RemoteServer, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    first = _start(state_dir, remote.url)
    try:
        # Phase 1: remote up, the first update of every server is delivered and acknowledged.
        _command(first, "publish Started")
        wait_for(lambda: len(remote.updates()) == len(SERVERS))
        wait_for(lambda: _command(first, "depth") == "depth 0")
        acked = {u.headers["idempotency-key"] for u in remote.updates()}

        # Phase 2: remote down, two more updates per server, then kill -9.
        remote.stop()
        _command(first, "publish CreatingContainer")
        assert _command(first, "publish Ready") == f"published {2 * len(SERVERS)}"
    finally:
        sigkill(first)

    # Phase 3: remote back, the agent restarted on the same state directory.
    remote.clear()
    remote.start()
    second = _start(state_dir, remote.url)
    try:
        wait_for(lambda: len(remote.updates()) >= 2 * len(SERVERS))
        wait_for(lambda: _command(second, "depth") == "depth 0")
    finally:
        assert second.stdin is not None
        second.stdin.close()
        second.wait(timeout=10)
        close_streams(second)

    delivered = remote.updates()
    assert not acked & {u.headers["idempotency-key"] for u in remote.updates(None)}
    for server in SERVERS:
        mine = [u for u in delivered if u.body["server"] == server]
        assert [u.body["status"] for u in mine] == ["installing", "ready"]
        assert [u.headers["x-lightd-sequence"] for u in mine] == ["2", "3"]
