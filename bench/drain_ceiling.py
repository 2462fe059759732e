"""A measurement aid beside figure 6 (not a figure): the ceiling of the outbox drain.

``python -m bench.drain_ceiling [--servers 20] [--per-server 50] [--mode bare|agent|both]``
starts ``bench.recorder`` (figure 6's remote) in its own process and sends it
``servers x per_server`` updates as ``servers`` concurrent chains, each chain sequential (one
request in flight per server, as the agent's order per server demands):

- ``bare``: a bare ``httpx.AsyncClient`` per chain with the limits and timeout the agent's
  ``RemoteClient`` uses, a same-sized body and the same headers: the rate the chosen client
  and the recorder allow on this machine;
- ``agent``: the agent's own delivery (``Outbox`` in a temporary directory, ``Delivery``,
  ``RemoteClient``) draining the same number of updates queued beforehand.

Wall-clock rates move with the machine's load; the CPU seconds per update of this process
(the sender) and of the recorder (``bench.procs.cpu_seconds``) do not, so both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.procs import cpu_seconds, free_port
from lightd_agent import __version__
from lightd_agent.remote.client import RemoteClient
from lightd_agent.remote.delivery import Delivery
from lightd_agent.remote.journal import Journal
from lightd_agent.remote.outbox import Outbox
from lightd_shared.remote import RemoteSettings

__all__ = ["main"]

TOKEN = "lightd_" + "ab" * 16


@contextlib.contextmanager
def _recorder() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.recorder", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bench.recorder did not start")
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Result:
    mode: str
    updates: int
    seconds: float
    sender_cpu: float
    recorder_cpu: float

    def line(self) -> str:
        n = self.updates
        return (
            f"{self.mode:6s} {n} updates in {self.seconds:.3f} s = {n / self.seconds:,.0f}/s; "
            f"CPU per update: sender {self.sender_cpu / n * 1e6:.0f} us, "
            f"recorder {self.recorder_cpu / n * 1e6:.0f} us"
        )


def _body(server: str) -> dict[str, str]:
    return {"event": "update", "server": server, "status": "running"}


async def _bare(url: str, servers: int, per_server: int) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "User-Agent": f"lightd/{__version__}",
        "Accept": "application/json",
    }

    ssl_context = httpx.create_ssl_context()  # one for all, as RemoteClient does

    async def chain(index: int) -> None:
        server = f"s{index}"
        content = json.dumps(_body(server), separators=(",", ":")).encode()
        # As RemoteClient._new_http: one client (one kept-alive connection) per chain.
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            headers=headers,
            follow_redirects=False,
            verify=ssl_context,
        ) as http:
            for seq in range(1, per_server + 1):
                response = await http.post(
                    f"{url}/update",
                    content=content,
                    headers={
                        "Idempotency-Key": uuid.uuid4().hex,
                        "X-Lightd-Sequence": str(seq),
                        "Content-Type": "application/json",
                    },
                )
                await response.aread()
                if response.status_code != 200:
                    raise RuntimeError(f"recorder answered {response.status_code}")

    await asyncio.gather(*(chain(i) for i in range(servers)))


def _queue(servers: int, per_server: int, state_dir: Path) -> Outbox:
    """An outbox holding the updates, as figure 6's outage leaves it (queued, not timed)."""
    outbox = Outbox(state_dir / "remote-outbox.sqlite3")
    outbox.enqueue_many(
        [
            (f"s{i}", _body(f"s{i}"), time.time(), k)
            for k in range(per_server)
            for i in range(servers)
        ]
    )
    return outbox


async def _agent(url: str, outbox: Outbox, state_dir: Path) -> None:
    settings = RemoteSettings.model_validate(
        {"enabled": True, "url": url, "token": TOKEN, "events": "all"}
    )
    journal = Journal(outbox, lambda: settings, state_dir, lambda: None)
    client = RemoteClient(settings)
    delivery = Delivery(outbox, journal, lambda: settings, lambda: client)
    task = asyncio.create_task(delivery.loop())
    try:
        while outbox.depth() > 0:
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def _measure(mode: str, url: str, recorder: int, servers: int, per: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="drain-ceiling-") as tmp:
        outbox = _queue(servers, per, Path(tmp)) if mode == "agent" else None
        sender0, recorder0 = time.process_time(), cpu_seconds(recorder)
        began = time.perf_counter()
        if outbox is None:
            await _bare(url, servers, per)
        else:
            await _agent(url, outbox, Path(tmp))
        seconds = time.perf_counter() - began
        result = Result(
            mode,
            servers * per,
            seconds,
            time.process_time() - sender0,
            cpu_seconds(recorder) - recorder0,
        )
        if outbox is not None:
            outbox.close()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--per-server", type=int, default=50)
    parser.add_argument("--mode", choices=("bare", "agent", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    modes = ("bare", "agent") if args.mode == "both" else (args.mode,)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with _recorder() as (url, pid):
        for _ in range(args.repeat):
            for mode in modes:
                result = asyncio.run(_measure(mode, url, pid, args.servers, args.per_server))
                print(result.line(), flush=True)


if __name__ == "__main__":
    main()
