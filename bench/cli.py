"""``python -m bench [--quick] [--json PATH] [--profile]``: run every figure, print the table.

Order: the agent figures (1, 7a, 2, 6), the coordinator figures (3, 7b, 4), the joined ones
(5), the scale-out ones (8, 9: replicas on Redis), the large-fleet ones (10, 11, 12: 100,000
nodes, the fleet two replicas keep active, SSE across replicas). Each group runs inside the
run's time budget (24 min full, 3 min ``--quick``); a group that fails is reported as failed
in the table (and the exit status is 1), never left out.
Outputs: the Markdown table on stdout and in ``bench/results/<stamp>.md``, the figures as a
JSON list (``--json``, default ``bench/results/<stamp>.json``), and the full record with every
distribution in ``bench/results/<stamp>.full.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import docker

from bench.agent_rig import cleanup_docker
from bench.context import IMAGE, Run, Sizes
from bench.figures.agent import agent_figures
from bench.figures.cluster import cluster_figures
from bench.figures.coordinator import coordinator_figures
from bench.figures.fleet import fleet_figures
from bench.figures.scaling import scaling_figures
from bench.report import Figure, full_record, machine_info, markdown, to_json, write

__all__ = ["main"]

RESULTS = Path("bench/results")
GROUPS: dict[str, tuple[str, Callable[[Run], Awaitable[list[Figure]]]]] = {
    "agent": ("1, 2a, 6, 7a", agent_figures),
    "coordinator": ("3, 4, 7b", coordinator_figures),
    "cluster": ("2b, 5", cluster_figures),
    "scaling": ("8, 9", scaling_figures),
    "fleet": ("10, 11, 12", fleet_figures),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI), under 3 minutes")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test suite
    parser.add_argument("--json", type=Path, help="write the figures as a JSON list here")
    parser.add_argument("--profile", action="store_true", help="py-spy the servers under test")
    parser.add_argument(
        "--only", action="append", choices=sorted(GROUPS), help="run only these groups"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser


def _ensure_image(client: docker.DockerClient) -> None:
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        print(f"building {IMAGE} with scripts/build-test-images ...", flush=True)
        subprocess.run(["scripts/build-test-images"], check=True, timeout=300)


async def _run_all(run: Run, groups: list[str]) -> tuple[list[Figure], bool]:
    figures: list[Figure] = []
    ok = True
    for name in groups:
        numbers, measure = GROUPS[name]
        began = time.monotonic()
        print(f"-- figures {numbers} ({name}) ...", flush=True)
        try:
            figures += await measure(run)
        except Exception as exc:
            ok = False
            (run.run_dir / f"{name}-error.txt").write_text(traceback.format_exc())
            figures.append(
                Figure(
                    figure=f"figures {numbers}",
                    value=None,
                    unit="",
                    target="",
                    met=None,
                    detail=f"FAILED: {type(exc).__name__}: {exc}"[:300],
                )
            )
        print(f"   done in {time.monotonic() - began:.0f} s", flush=True)
    return figures, ok


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.tiny:
        sizes, mode, budget = Sizes.tiny(), "tiny", 130.0
    elif args.quick:
        sizes, mode, budget = Sizes.quick(), "quick", 170.0
    else:
        sizes, mode, budget = Sizes.full(), "full", 24 * 60.0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.out / f"{stamp}-{mode}"
    run_dir.mkdir(parents=True, exist_ok=True)
    client = docker.from_env(timeout=60)
    run_id = uuid.uuid4().hex[:8]
    try:
        _ensure_image(client)
        machine = machine_info(mode, str(client.version().get("Version", "unknown")))
        run = Run(
            sizes=sizes,
            mode=mode,
            run_dir=run_dir,
            run_id=run_id,
            profile=args.profile,
            docker=client,
            deadline=time.monotonic() + budget,
        )
        print(f"lightd bench ({mode}), run {run_id}, results in {run_dir}", flush=True)
        print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        groups = args.only or list(GROUPS)
        figures, ok = asyncio.run(_run_all(run, groups))
    finally:
        cleanup_docker(client, run_id)  # whatever happened, nothing of this run is left
        client.close()
    table = markdown(figures, machine)
    if run.notes:
        table += "\nNotes: " + " ".join(run.notes) + "\n"
    print()
    print(table)
    write(run_dir / "table.md", table)
    write(run_dir / "full.json", full_record(figures, machine))
    write(args.json or run_dir / "figures.json", to_json(figures) + "\n")
    return 0 if ok else 1
