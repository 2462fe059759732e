"""The command line, run as real processes: config, start, status, token and ``vendetta``."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from jose import jwt

from lightd_coordinator.config import SAMPLE_AUTH_TOKEN, SAMPLE_JWT_SECRET
from lightd_coordinator.security import COORDINATOR_AUDIENCE
from tests.harness.servers import free_port
from tests.harness.wait import wait_until

VENDETTA = str(Path(sys.executable).parent / "vendetta")
COORD = [sys.executable, "-m", "lightd_coordinator"]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIGHTD_COORD_") and not k.startswith("VENDETTA_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=60, env={**_env(), **env}
    )


def _write(path: Path, **sections: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path


@contextmanager
def started(args: list[str], cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"coordinator exited: {process.communicate()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 20, interval=0.1, what="the coordinator started")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def test_help_and_version(tmp_path: Path) -> None:
    for args in (COORD, [VENDETTA, "coordination"]):
        helped = run([*args, "--help"], tmp_path)
        assert helped.returncode == 0
        for verb in ("config", "start", "status", "token"):
            assert verb in helped.stdout
    assert run([*COORD, "--version"], tmp_path).stdout.startswith("lightd-coordinator ")


@pytest.mark.parametrize("spelling", ["lightd-coordinator", "vendetta"])
def test_config_writes_a_complete_default_file(tmp_path: Path, spelling: str) -> None:
    args = COORD if spelling == "lightd-coordinator" else [VENDETTA, "coordination"]
    done = run([*args, "config"], tmp_path)
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert list(document) == ["server", "registry", "websocket", "auth", "logging", "activity"]
    assert document["server"]["idle_timeout"] == "120s"
    refused = run([*args, "config"], tmp_path)
    assert refused.returncode == 1
    assert "already exists" in refused.stderr
    other = run([*args, "config", "--output", str(tmp_path / "etc" / "c.yaml")], tmp_path)
    assert other.returncode == 0 and (tmp_path / "etc" / "c.yaml").is_file()


@pytest.mark.parametrize(
    ("content", "expected", "command"),
    [
        ("server:\n  port: nope\n", "server.port", [*COORD, "start", "-c"]),
        (
            "registry:\n  node_timout: 5s\n",
            "registry.node_timout: unknown key",
            [VENDETTA, "coordination", "start", "--config"],
        ),
        ("server: [\n", "not valid YAML", [*COORD, "status", "-c"]),
    ],
)
def test_bad_config_is_one_message_and_a_failure(
    tmp_path: Path, content: str, expected: str, command: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    done = run([*command, str(path)], tmp_path)
    assert done.returncode == 2  # a bad config: 2, as for the agent
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lightd-coordinator: error: ")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr


def test_auth_with_sample_secrets_refuses_to_start(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", auth={"enabled": True})
    done = run([*COORD, "start", "-c", str(path)], tmp_path)
    assert done.returncode == 2
    assert "sample" in done.stderr and "--dev" in done.stderr
    assert SAMPLE_JWT_SECRET not in done.stderr


AGENT_TOKEN = "lightd_5f0e1d2c3b4a59687766554433221100"


def test_start_status_and_json_logs_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dev run with auth on: ``status`` prints tables; logs are JSON lines and hold no secret."""
    port = free_port()
    _write(
        tmp_path / "config.yaml",  # picked up from the working directory
        server={"host": "127.0.0.1", "port": port, "idle_timeout": "1s"},
        auth={"enabled": True, "agent_token": AGENT_TOKEN},
        logging={"format": "json", "level": "info"},
    )
    base = f"http://127.0.0.1:{port}"
    with started([*COORD, "start", "--dev"], tmp_path, port) as process:
        static = {"Authorization": f"Bearer {SAMPLE_AUTH_TOKEN}"}
        created = httpx.post(
            f"{base}/api/v1/nodes",
            headers=static,
            json={"id": "node-1", "address": "127.0.0.1", "port": 9, "labels": {"env": "dev"}},
        )
        assert created.status_code == 201
        as_agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        beat = httpx.post(f"{base}/api/v1/nodes/node-1/heartbeat", headers=as_agent)
        assert beat.status_code == 200
        assert httpx.get(f"{base}/api/v1/nodes", headers=as_agent).status_code == 403
        assert httpx.get(f"{base}/api/v1/nodes").status_code == 401
        # The token in the URL is what the coordinator's log must mask; this test's own client
        # (httpx) would log the URL as it sent it when an earlier test set INFO logging.
        with caplog.at_level(logging.WARNING, logger="httpx"):
            with httpx.stream("GET", f"{base}/ws?token={SAMPLE_AUTH_TOKEN}") as stream:
                assert stream.status_code == 200
        httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong-secret-value"})

        for args in ([*COORD, "status"], [VENDETTA, "coordination", "status"]):
            status = run(args, tmp_path)
            assert status.returncode == 0, status.stderr
            lines = status.stdout.splitlines()
            assert lines[0].split() == ["COORDINATOR", "STATUS", "VERSION", "NODES", "ACTIVE"]
            assert lines[1].split()[:2] == [base, "healthy"]
            assert lines[1].split()[3:] == ["1", "1"]
            node_header = next(i for i, line in enumerate(lines) if line.startswith("ID"))
            assert lines[node_header].split()[:4] == ["ID", "NAME", "PROVIDER", "STATUS"]
            row = lines[node_header + 1].split()
            assert row[:4] == ["node-1", "node-1", "docker", "active"]
            assert "env=dev" in row
        as_json = run([*COORD, "status", "--json"], tmp_path)
        assert as_json.returncode == 0, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report["url"] == base and report["health"]["status"] == "healthy"
        assert [n["id"] for n in report["nodes"]["nodes"]] == ["node-1"]

        # idle_timeout: an idle keep-alive connection is closed by the server
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(10)
            answer = b""
            while b'"version"' not in answer:
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            started_idle = time.monotonic()
            assert sock.recv(65536) == b""
            assert time.monotonic() - started_idle >= 0.9

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert entries, err
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    messages = " ".join(e["message"] for e in entries)
    assert "node node-1 registered" in messages
    assert "coordinator stopped" in messages
    assert "GET /ws?token=***" in messages
    for secret in (SAMPLE_AUTH_TOKEN, SAMPLE_JWT_SECRET, AGENT_TOKEN, "wrong-secret-value"):
        assert secret not in out and secret not in err


def test_operator_verbs_say_why_they_fail(tmp_path: Path) -> None:
    """A wrong token is 'refused' (with the coordinator's reason and where the token came from),
    not 'wanted'; a selector that matches no node fails; a bad config is 2 for the verbs too."""
    port = free_port()
    _write(
        tmp_path / "config.yaml",
        server={"host": "127.0.0.1", "port": port},
        auth={"enabled": True, "agent_token": AGENT_TOKEN},
    )
    base = f"http://127.0.0.1:{port}"
    with started([*COORD, "start", "--dev"], tmp_path, port):
        listing = [*COORD, "nodes", "list", "--url", base]
        wrong = "wrong-operator-token-0123"
        from_env = run(listing, tmp_path, LIGHTD_COORD_TOKEN=wrong)
        assert from_env.returncode == 1
        assert "refused the token from $LIGHTD_COORD_TOKEN" in from_env.stderr
        assert "neither the server token nor a JWT" in from_env.stderr
        assert "wants a token" not in from_env.stderr and wrong not in from_env.stderr
        flag = run([*listing, "--token", wrong], tmp_path)
        assert flag.returncode == 1 and "refused the token from --token" in flag.stderr
        agent = run([*listing, "--token", AGENT_TOKEN], tmp_path)
        assert agent.returncode == 1 and "refused the token from --token for GET" in agent.stderr
        assert "agent token opens only" in agent.stderr
        status = run([*COORD, "status"], tmp_path, LIGHTD_COORD_TOKEN=wrong)
        assert status.returncode == 1 and "refused the token" in status.stderr

        ok = {"LIGHTD_COORD_TOKEN": SAMPLE_AUTH_TOKEN}
        nobody = run([*COORD, "dispatch", "--selector", "env=none", "echo hi"], tmp_path, **ok)
        assert nobody.returncode == 1
        assert "no active node matches the selector {'env': 'none'}" in nobody.stderr
        unknown = run([*COORD, "containers", "status", "nope", "web"], tmp_path, **ok)
        assert unknown.returncode == 1 and "node 'nope' is not registered" in unknown.stderr
        bad_param = run(
            [*COORD, "dispatch", "n", "stop", "--type", "container", "--param", "srv=web"],
            tmp_path,
            **ok,
        )
        assert bad_param.returncode == 1
        assert "params.server: Field required" in bad_param.stderr, bad_param.stderr
    (tmp_path / "broken.yaml").write_text("server:\n  port: nope\n")
    broken = run([*COORD, "nodes", "list", "-c", str(tmp_path / "broken.yaml")], tmp_path)
    assert broken.returncode == 2 and "server.port" in broken.stderr


def test_token_show_prints_the_local_clusters_operator_token(tmp_path: Path) -> None:
    token = "lightd_0123456789abcdef0123456789abcdef"
    (tmp_path / ".env").write_text(
        "# lightd local cluster\nLIGHTD_JWT_SECRET=abc\n"
        f"LIGHTD_OPERATOR_TOKEN={token}\nLIGHTD_AGENT_TOKEN=lightd_ff\n"
    )
    below = tmp_path / "deploy" / "deeper"
    below.mkdir(parents=True)
    shown = run([*COORD, "token", "show"], below)  # found in a parent directory
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"{token}\n"
    exported = run([*COORD, "token", "show", "--export"], tmp_path)
    assert exported.stdout == f"export LIGHTD_COORD_TOKEN={token}\n"
    other = tmp_path / "other.env"
    other.write_text("LIGHTD_AGENT_TOKEN=lightd_ff\n")
    empty = run([*COORD, "token", "show", "--env-file", str(other)], tmp_path)
    assert empty.returncode == 1 and "has no LIGHTD_OPERATOR_TOKEN" in empty.stderr
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    missing = run([*COORD, "token", "show", "--env-file", str(lonely / ".env")], lonely)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_container_verbs_have_help_that_reads_right(tmp_path: Path) -> None:
    helped = run([*COORD, "containers", "--help"], tmp_path)
    assert helped.returncode == 0
    assert "show a server's status" in helped.stdout and "show a server's output" in helped.stdout
    assert "status a server" not in helped.stdout and "logs a server" not in helped.stdout
    create = run([*COORD, "containers", "create", "--help"], tmp_path).stdout
    for flag in ("--image", "--port", "--env", "--install-script", "--memory", "--wait"):
        assert flag in create


def test_status_without_a_server_fails_clearly(tmp_path: Path) -> None:
    port = free_port()
    done = run([*COORD, "status", "--url", f"http://127.0.0.1:{port}"], tmp_path)
    assert done.returncode == 1
    assert "cannot reach the coordinator" in done.stderr


def test_token_mints_a_jwt_the_server_accepts(tmp_path: Path) -> None:
    secret = "cli-test-secret-0123456789"
    done = run([*COORD, "token", "--expires", "10m"], tmp_path, VENDETTA_JWT_SECRET=secret)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience=COORDINATOR_AUDIENCE)
    assert claims["exp"] - claims["iat"] == 600
    assert run([*COORD, "token", "--expires", "soon"], tmp_path).returncode == 1


def test_unusable_sqlite_path_is_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = _write(
        tmp_path / "c.yaml",
        registry={"provider": "sqlite", "path": str(blocker / "registry.db")},
        server={"port": free_port()},
    )
    done = run([*COORD, "start", "-c", str(path)], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "registry.path" in lines[0], done.stderr


@pytest.mark.parametrize("where", ["/proc/nope/x.log", "{tmp}/file/x.log", "{tmp}"])
def test_unopenable_log_output_is_one_message(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    output = where.format(tmp=tmp_path)
    path = _write(tmp_path / "c.yaml", logging={"output": output}, server={"port": free_port()})
    done = run([*COORD, "start", "-c", str(path)], tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lightd-coordinator: error: logging.output")
    assert output in lines[0]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_file_output_in_both_formats(tmp_path: Path, fmt: str) -> None:
    log_file = tmp_path / "logs" / "coordinator.log"
    script = (
        "import logging\n"
        "from lightd_coordinator.config import LoggingSettings\n"
        "from lightd_coordinator.logs import configure_logging\n"
        f"configure_logging(LoggingSettings(format={fmt!r}, output={str(log_file)!r}),"
        " secrets=['hunter2-secret'])\n"
        "logging.getLogger('lightd_coordinator.x').warning("
        "'node %s said hunter2-secret', 'n1', extra={'node_id': 'n1'})\n"
        "logging.getLogger('lightd_coordinator.x').debug('hidden at info')\n"
    )
    done = run([sys.executable, "-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1
    assert "hunter2-secret" not in lines[0]
    if fmt == "json":
        entry = json.loads(lines[0])
        assert entry["message"] == "node n1 said ***"
        assert (entry["level"], entry["node_id"]) == ("warning", "n1")
    else:
        assert "WARNING" in lines[0] and "node n1 said ***" in lines[0]
