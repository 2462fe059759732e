"""The benchmark harness runs end to end at a tiny size and reports every figure; figure 6
counts what it claims (:mod:`bench.outage`).

No timing is asserted (the machine is shared and has two cores): only that the harness runs
the real agent, coordinator and Docker work, writes a JSON list of
``{figure, value, unit, target, met}`` with every figure in it, and leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import pytest

from bench.outage import Answer, count_outage, explained_requests, unexplained

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("1.", "2a.", "2b.", "3a.", "3b.", "4.", "5.", "6.", "7a.", "7b.", "8a.", "8b.", "9.")
FIGURES += ("10a.", "10b.", "10c.", "10d.", "11.", "12.")


@pytest.mark.docker
def test_bench_tiny_run_reports_every_figure(
    tmp_path: Path, test_image: str, docker_client: docker.DockerClient
) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert isinstance(figures, list)
    for figure in figures:
        assert {"figure", "value", "unit", "target", "met"} <= set(figure)
        assert isinstance(figure["figure"], str) and isinstance(figure["target"], str)
        assert figure["value"] is None or isinstance(figure["value"], int | float)
        assert figure["met"] in (True, False, None)
        assert "FAILED" not in figure.get("detail", "")
    names = [f["figure"] for f in figures]
    for prefix in FIGURES:
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    measured = [f for f in figures if f["value"] is not None]
    assert all(f["met"] is not None for f in measured)
    # Figure 6 is a guarantee, not a timing: nothing lost, no action refused.
    [six] = [f for f in figures if f["figure"].startswith("6.")]
    assert six["value"] == 0, six["detail"]
    assert "refused 0 (0 not explained by the agent's log)" in six["detail"], six["detail"]
    # Figures 2a and 2b carry their floor: the same events' delivery to a bare SDK listener.
    for prefix in ("2a.", "2b."):
        [two] = [f for f in figures if f["figure"].startswith(prefix)]
        floor = r"floor, Docker -> a bare SDK listener: p50 \d+\.\d / p99 \d+\.\d ms"
        assert re.search(floor, two["detail"]), two["detail"]
    # The table went to stdout with every figure and its target beside it.
    for figure in figures:
        assert figure["figure"] in done.stdout
    assert "Load average at start" in done.stdout
    # nothing of this run is left behind (another run on the same engine is not this test's)
    found = re.search(r"lightd bench \([^)]*\), run (\S+),", done.stdout)
    assert found, done.stdout[:500]
    run_label = f"lightd.bench={found.group(1)}"
    leftovers = docker_client.containers.list(all=True, filters={"label": run_label})
    assert not leftovers, [c.name for c in leftovers]
    volumes = docker_client.volumes.list(filters={"label": run_label})
    assert not volumes, [v.name for v in volumes]


# -- figure 6's counting (bench/outage.py): pure functions, no Docker ------------------------


def _records(server: str, numbers: list[int]) -> list[dict[str, Any]]:
    return [{"server": server, "key": f"{server}-{n}", "sequence": str(n)} for n in numbers]


def test_a_no_op_action_is_not_a_lost_update() -> None:
    """The issue's run: a start refused (503), then a kill of the stopped server (200, no
    change). Answers of 200 (3) against updates received (2) said "1 lost"; nothing was."""
    answers = [
        Answer("s12", "kill", 200, state="stopped"),
        Answer("s12", "start", 503, detail="lifecycle actions are refused right now: gate"),
        Answer("s12", "kill", 200, state="stopped"),
        Answer("s12", "start", 200, state="running"),
    ]
    count = count_outage({"s12": "running"}, answers, {"s12": 7}, _records("s12", [8, 9]))
    assert (count.answered, count.changes, count.produced, count.received) == (3, 2, 2, 2)
    assert count.lost == 0 and count.lost_by_server == {}
    assert count.refused == Counter({"503: gate": 1})
    assert count.refusals == 1


def test_a_gap_in_the_sequences_is_a_loss_even_when_the_totals_match() -> None:
    answers = [
        Answer("a", "kill", 200, state="stopped"),
        Answer("a", "start", 200, state="running"),
    ]
    answers += [
        Answer("b", "kill", 200, state="stopped"),
        Answer("b", "start", 200, state="running"),
    ]
    # b's update 2 never arrived; a third update of a (an Error, say) makes 4 of 4 received
    records = _records("a", [1, 2, 3]) + _records("b", [1, 3])
    count = count_outage({"a": "running", "b": "running"}, answers, {"a": 0, "b": 0}, records)
    assert count.received == 5 and count.changes == 4
    assert count.lost == 1 and count.lost_by_server == {"b": 1}
    assert count.extra == 2  # a and b each numbered 3 updates for 2 state changes


def test_a_tail_that_never_arrived_is_a_loss() -> None:
    answers = [
        Answer("a", "kill", 200, state="stopped"),
        Answer("a", "start", 200, state="running"),
    ]
    count = count_outage({"a": "running"}, answers, {"a": 4}, _records("a", [5]))
    assert count.lost == 1 and count.produced == 1 and count.changes == 2
    nothing = count_outage({"a": "running"}, answers, {"a": 4}, [])
    assert nothing.lost == 2 and nothing.received == 0


def test_updates_from_before_the_outage_and_resends_are_not_counted_twice() -> None:
    answers = [Answer("a", "kill", 200, state="stopped")]
    records = _records("a", [3, 4]) + _records("a", [4])  # 3 is older; 4 sent twice (same key)
    count = count_outage({"a": "running"}, answers, {"a": 3}, records)
    assert (count.received, count.produced, count.lost, count.extra) == (1, 1, 0, 0)


def test_a_5xx_answer_is_explained_only_by_the_agent_log_line_for_its_request() -> None:
    answers = [
        Answer("s1", "start", 503, detail="refused"),
        Answer("s2", "start", 503, detail="refused"),
        Answer("s3", "kill", 409, detail="conflict"),  # a 4xx explains itself
    ]
    line = {
        "level": "warning",
        "logger": "lightd_agent.api",
        "message": "answered 503 to POST /containers/s1/start (server s1): refused",
        "status_code": 503,
        "method": "POST",
        "path": "/containers/s1/start",
    }
    lines = [json.dumps(line), "not json", json.dumps({**line, "level": "info"})]
    assert explained_requests(lines) == Counter({("POST", "/containers/s1/start", 503): 1})
    assert unexplained(answers, lines) == 1  # s2's 503 has no line
    assert unexplained(answers[:1], lines) == 0
