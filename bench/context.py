"""What every figure gets: the run's size, directory, labels, Docker client and deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

__all__ = ["IMAGE", "LABEL", "Run", "Sizes"]

IMAGE = "lightd-test-busybox:latest"
LABEL = "lightd.bench"
"""Every container and volume the run creates carries ``lightd.bench=<run id>``."""


@dataclass(frozen=True)
class Sizes:
    servers: int  # figure 1 (and the idle agent of figure 7)
    event_cycles: int  # figure 2: kill + start cycles, two samples each
    nodes: int  # figures 3 and 7
    load_seconds: float  # figure 3: per side, split in two interleaved halves
    load_connections: int
    subscribers: int  # figure 4
    publishes: int
    dispatches: int  # figure 5: per side
    outbox_updates: int  # figure 6
    big_fleet: int = 100_000  # figure 10: nodes on redis
    list_requests: int = 200  # figure 10: per query
    hold_steps: tuple[int, ...] = (10_000, 20_000, 40_000)  # figure 11: fleet sizes tried
    hold_seconds: float = 120.0  # figure 11: per step
    hold_interval: float = 10.0  # figure 11: heartbeat period (node_timeout is 6 of them)
    replica_subscribers: int = 1000  # figure 12

    @staticmethod
    def full() -> Sizes:
        return Sizes(20, 60, 10_000, 10.0, 32, 1000, 50, 300, 1000)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(3, 5, 500, 2.0, 16, 100, 10, 30, 60, 2_000, 50, (500, 1_000), 10.0, 1.0, 100)

    @staticmethod
    def tiny() -> Sizes:
        """For the test suite: every figure runs, at the smallest size that means anything."""
        return Sizes(2, 2, 100, 0.5, 4, 10, 3, 5, 10, 200, 10, (100,), 3.0, 0.5, 10)


@dataclass
class Run:
    sizes: Sizes
    mode: str
    run_dir: Path
    run_id: str
    profile: bool
    docker: docker.DockerClient
    deadline: float  # monotonic: no figure starts work after it
    notes: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def labels(self) -> dict[str, str]:
        return {LABEL: self.run_id}
