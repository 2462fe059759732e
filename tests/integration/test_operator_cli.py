"""The operator verbs of ``lightd-coordinator`` against a running coordinator and a real agent."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lightd_coordinator.cli import main
from tests.harness.docker import Cleanup
from tests.integration.fleet import STATIC, running_coordinator, start_agent, wait_until

pytestmark = pytest.mark.docker

CLI = str(Path(sys.executable).with_name("lightd-coordinator"))


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(base: str, *args: str) -> Ran:
    """``lightd-coordinator ARGS --url BASE --token ...`` in this process (fast; same code)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--url", base, "--token", STATIC])
    return Ran(code, out.getvalue(), err.getvalue())


def client_json(base: str, path: str) -> dict[str, object]:
    response = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {STATIC}"}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_operator_verbs(
    tmp_path: Path, test_image: str, docker_cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.yaml of someone else's is read
    with running_coordinator() as base:
        agent = start_agent(tmp_path, base, "cli", allow_exec=True)
        node = agent.node_id
        try:
            wait_until(
                lambda: node in cli(base, "nodes", "list").stdout,
                what="the node in `nodes list`",
            )
            listed = cli(base, "nodes", "list")
            assert listed.returncode == 0
            header, *rows = listed.stdout.splitlines()
            assert header.split()[:4] == ["ID", "NAME", "PROVIDER", "STATUS"]
            assert any(row.startswith(node) and " active " in row for row in rows)
            as_json = json.loads(cli(base, "nodes", "list", "--json").stdout)
            assert [n["id"] for n in as_json["nodes"]] == [node]

            shown = cli(base, "nodes", "show", node)
            assert shown.returncode == 0 and "capabilities  docker,exec" in shown.stdout

            # dispatch to a node, and to a selector; the output comes after the wait
            said = cli(base, "dispatch", node, "echo 'hello world'")
            assert said.returncode == 0, said.stderr
            assert said.stdout == "hello world\n"
            fanned = cli(base, "dispatch", "--selector", "role=cli", "echo hi")
            assert fanned.returncode == 0, fanned.stderr
            assert fanned.stdout.splitlines()[0].startswith(f"== {node}: success")
            failing = cli(base, "dispatch", node, "exit 3", "--json")
            assert failing.returncode == 1
            assert json.loads(failing.stdout)["status"] == "failed"

            # containers on the node
            server = f"cli-{docker_cleanup.value}"
            spec = tmp_path / "spec.json"
            spec.write_text(
                json.dumps(
                    {
                        "id": server,
                        "image": test_image,
                        # a shell as PID 1 that ends on SIGTERM: stop does not wait for the kill
                        "startup_command": "trap 'exit 0' TERM; httpd -f -p 8080 & wait",
                        "ports": [{"container": 8080}],
                        "labels": docker_cleanup.labels,
                    }
                )
            )
            made = cli(base, "containers", "create", node, "--spec", str(spec))
            assert made.returncode == 0, made.stderr
            assert server in made.stdout and "installing" in made.stdout

            def running() -> bool:
                out = cli(base, "containers", "status", node, server).stdout
                return "running" in out

            wait_until(running, what="the server running")

            # the common fields as flags over a spec (the flags win), waiting on /ws
            waited = f"cli-w-{docker_cleanup.value}"
            script = tmp_path / "install.sh"
            script.write_text("echo installing from a file > /data/marker\n")
            labels_only = tmp_path / "labels.json"
            labels_only.write_text(
                json.dumps({"id": "overridden", "image": "x", "labels": docker_cleanup.labels})
            )
            flagged = cli(
                base,
                "containers",
                "create",
                node,
                "--spec",
                str(labels_only),
                "--id",
                waited,
                "--image",
                test_image,
                "--cmd",
                "trap 'exit 0' TERM; echo \"greeting=$GREETING\"; sleep 600 & wait",
                "--port",
                "8080",
                "--env",
                "GREETING=hi",
                "--memory",
                "64m",
                "--install-script",
                f"@{script}",
                "--wait",
                "--timeout",
                "2m",
            )
            assert flagged.returncode == 0, flagged.stderr
            said = [line for line in flagged.stdout.splitlines() if line.startswith(f"{waited}:")]
            assert said[-1] == f"{waited}: running", flagged.stdout
            assert f"{waited}: ready" in said and said.index(f"{waited}: ready") < len(said) - 1
            shown = client_json(base, f"/api/v1/nodes/{node}/containers/{waited}")
            assert shown["data"]["state"] == "running"
            logs = cli(base, "containers", "logs", node, waited)
            wait_until(
                lambda: "greeting=hi" in cli(base, "containers", "logs", node, waited).stdout,
                what="the --env value in the server's output",
            )
            assert logs.returncode == 0
            assert cli(base, "containers", "delete", node, waited).returncode == 0
            broken = cli(
                base,
                "containers",
                "create",
                node,
                "--spec",
                str(labels_only),
                "--id",
                f"{waited}-x",
                "--image",
                test_image,
                "--install-script",
                "echo step one; echo something broke >&2; exit 3",
                "--wait",
            )
            assert broken.returncode == 1
            assert "something broke" in broken.stderr, broken.stderr
            assert cli(base, "containers", "delete", node, f"{waited}-x").returncode == 0
            inside = cli(base, "containers", "exec", node, server, "echo in-$((40 + 2))")
            assert inside.returncode == 0 and inside.stdout.strip() == "in-42", inside.stderr
            argv = cli(base, "containers", "exec", node, server, "echo", "$((1))", "b")
            assert argv.returncode == 0 and argv.stdout.strip() == "$((1)) b"  # no shell
            fails = cli(base, "containers", "exec", node, server, "exit 3")
            assert fails.returncode == 1
            table = cli(base, "containers", "list", node).stdout
            assert table.splitlines()[0].split()[:2] == ["SERVER", "STATE"]
            assert any(line.startswith(server) for line in table.splitlines())
            wait_until(
                lambda: server in cli(base, "services").stdout,
                what="the service listed",
            )
            stopped = cli(base, "containers", "stop", node, server)
            assert stopped.returncode == 0 and "stopped" in stopped.stdout
            missing = cli(base, "containers", "start", node, "no-such-server")
            assert missing.returncode == 1 and "no-such-server" in missing.stderr
            gone = cli(base, "containers", "delete", node, server)
            assert gone.returncode == 0 and "deleted" in gone.stdout

            # the installed command, and events: the live tail prints one line per event
            tail = subprocess.Popen(
                [CLI, "events", "--url", base],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "LIGHTD_COORD_TOKEN": STATIC},
            )
            try:
                assert tail.stdout is not None
                first = tail.stdout.readline()
                assert "initial_state" in first and "1 node(s)" in first
            finally:
                tail.terminate()
                tail.wait(timeout=10)
                if tail.stdout is not None:
                    tail.stdout.close()

            unreachable = subprocess.run(
                [CLI, "nodes", "list", "--url", "http://127.0.0.1:9"],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=tmp_path,
            )
            assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
        finally:
            agent.stop()
