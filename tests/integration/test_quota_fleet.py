"""A server's disk quota through the coordinator: ``quota.get`` / ``quota.resize`` as commands,
as REST sugar and as ``lightd-coordinator containers quota``, against a real ``lightd run``
agent on the real engine with a real loop-mounted image."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import docker
import pytest

from lightd_coordinator.cli import main
from tests.agent.conftest import SERVE, remove_node
from tests.harness.disks import release_disks, require_loop
from tests.harness.docker import Cleanup
from tests.integration.fleet import STATIC, operator, running_coordinator, start_agent, wait_until

pytestmark = pytest.mark.docker


def _cli(base: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--url", base, "--token", STATIC])
    return code, out.getvalue(), err.getvalue()


def test_quota_through_the_coordinator(
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
    docker_cleanup: Cleanup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_loop()
    monkeypatch.chdir(tmp_path)
    agent = None
    try:
        with running_coordinator() as base, operator(base) as client:
            agent = start_agent(tmp_path, base, "quota", allow_exec=False)
            node = agent.node_id
            containers = f"/api/v1/nodes/{node}/containers"
            wait_until(
                lambda: client.get(f"/api/v1/nodes/{node}").status_code == 200, what="enrolled"
            )
            spec: dict[str, Any] = {
                "id": "dq",
                "image": test_image,
                "labels": dict(docker_cleanup.labels),
                "startup_command": SERVE,
                "limits": {"disk": "20m"},
            }
            created = client.post(containers, json=spec).json()
            assert created["status"] == "success", created
            wait_until(
                lambda: client.get(f"{containers}/dq").json()["data"]["state"] == "running",
                what="dq running",
            )

            shown = client.get(f"{containers}/dq/quota").json()
            assert shown["status"] == "success", shown
            assert shown["data"]["limit_mb"] == 20 and shown["data"]["used_mb"] == 0
            assert set(shown["data"]) >= {"size_mb", "used_mb", "available_mb", "percentage_used"}

            command = {"type": "container", "action": "quota.get", "params": {"server": "dq"}}
            done = client.post(f"/api/v1/nodes/{node}/commands", json=command).json()
            assert done["status"] == "success" and done["data"]["limit_mb"] == 20, done
            bad = {"type": "container", "action": "quota.resize", "params": {"server": "dq"}}
            refused = client.post(f"/api/v1/nodes/{node}/commands", json=bad)
            assert refused.status_code == 422 and "size" in refused.text

            assert client.post(f"{containers}/dq/stop").json()["status"] == "success"
            grown = client.post(f"{containers}/dq/resize", json={"size": 32}).json()
            assert grown["status"] == "success", grown
            assert grown["data"]["limit_mb"] == 32
            too_small = client.post(f"{containers}/dq/resize", json={"size": 1})
            assert too_small.status_code == 422 and "size" in too_small.text

            code, out, err = _cli(base, "containers", "quota", node, "dq")
            assert code == 0, err
            header, row = out.splitlines()
            assert header.split() == [
                "SERVER",
                "SIZE_MB",
                "USED_MB",
                "AVAILABLE_MB",
                "USED%",
                "LIMIT_MB",
            ]
            assert row.split()[0] == "dq" and row.split()[-1] == "32"
            code, out, err = _cli(base, "containers", "quota", node, "dq", "--resize", "24")
            assert code == 0, err
            assert out.splitlines()[1].split()[-1] == "24"
            code, out, _ = _cli(base, "containers", "quota", node, "dq", "--json")
            assert code == 0 and json.loads(out)["data"]["limit_mb"] == 24

            client.post(containers, json={**spec, "id": "plain", "limits": {}})
            code, _, err = _cli(base, "containers", "quota", node, "plain")
            assert code == 1 and "no disk limit" in err

            gone = client.delete(f"{containers}/dq", params={"volumes": "true"}).json()
            assert gone["status"] == "success", gone

            # `containers create --disk` sets limits.disk
            code, _, err = _cli(
                base, "containers", "create", node, "--id", "viacli", "--image", test_image,
                "--cmd", SERVE, "--disk", "12m", "--wait",
            )  # fmt: skip
            assert code == 0, err
            code, out, err = _cli(base, "containers", "quota", node, "viacli")
            assert code == 0 and out.splitlines()[1].split()[-1] == "12", (out, err)
            gone = client.delete(f"{containers}/viacli", params={"volumes": "true"}).json()
            assert gone["status"] == "success", gone
    finally:
        if agent is not None:
            agent.stop()
            remove_node(docker_client, agent.node_id)
        release_disks(tmp_path)
