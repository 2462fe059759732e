"""A stand-in agent process for crash tests: a bus and RemoteSync, driven over stdin.

``python -m tests.remote.publisher STATE_DIR URL SERVER...`` starts remote sync on the real
outbox in STATE_DIR and reads commands from stdin, one a line:

- ``publish KIND``: publish a ``KIND`` lifecycle event for every SERVER, then print
  ``published <outbox depth>`` (the events are committed to the outbox by then).

The test kills it with SIGKILL at a moment of its choosing; nothing is shut down cleanly.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from lightd_agent.events import EventBus, LifecycleEvent
from lightd_agent.remote.sync import RemoteSync
from lightd_shared.remote import RemoteSettings

TOKEN = "lightd_ad2f7fc49ed640429c450e14ed07c8d5"


async def main(state_dir: Path, url: str, servers: list[str]) -> None:
    settings = RemoteSettings.model_validate(
        {
            "enabled": True,
            "url": url,
            "token": TOKEN,
            "timeout": "500ms",
            "health_interval": "200ms",
            "retry_max_delay": "300ms",
        }
    )
    bus = EventBus()
    sync = RemoteSync(settings, state_dir)
    sync.attach(bus)
    await sync.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command, _, kind = line.strip().partition(" ")
        if command == "publish":
            for server in servers:
                state = "ready" if kind == "Ready" else "installing"
                bus.publish(LifecycleEvent(server=server, kind=kind, state=state))  # type: ignore[arg-type]
            print(f"published {sync.snapshot().outbox_depth}", flush=True)
        elif command == "depth":
            print(f"depth {sync.snapshot().outbox_depth}", flush=True)
    await sync.stop()
    sync.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))
