"""``containers create``'s flags over ``--spec``: the spec the operator CLI sends."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from lightd_coordinator.cli import build_parser
from lightd_coordinator.operator.client import OperatorError
from lightd_coordinator.operator.verbs import _spec


def _parsed(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["containers", "create", "node-1", *argv])


def test_flags_build_a_spec_and_win_over_the_file(tmp_path: Path) -> None:
    base = tmp_path / "spec.json"
    base.write_text(
        json.dumps({"id": "old", "image": "x", "env": {"A": "1"}, "labels": {"team": "web"}})
    )
    script = tmp_path / "install.sh"
    script.write_text("echo hi\n")
    spec = _spec(
        _parsed(
            "--spec",
            str(base),
            "--id",
            "web-1",
            "--image",
            "busybox",
            "--port",
            "8080",
            "--port",
            "18081:8081/udp",
            "--env",
            "B=2",
            "--env",
            "C=x=y",
            "--memory",
            "64m",
            "--install-script",
            f"@{script}",
        )
    )
    assert spec == {
        "id": "web-1",
        "image": "busybox",
        "env": {"A": "1", "B": "2", "C": "x=y"},
        "labels": {"team": "web"},
        "ports": [{"container": 8080}, {"container": 8081, "host": 18081, "protocol": "udp"}],
        "limits": {"memory": "64m"},
        "install_script": "echo hi\n",
    }
    inline = _spec(_parsed("--id", "w", "--image", "i", "--install-script", "exit 0"))
    assert inline["install_script"] == "exit 0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image", "i"], "at least --id and --image"),
        (["--id", "w", "--image", "i", "--port", "web"], "--port 'web' must look like"),
        (["--id", "w", "--image", "i", "--env", "NOVALUE"], "--env 'NOVALUE' must look like"),
        (["--id", "w", "--image", "i", "--install-script", "@/no/such/file"], "No such file"),
    ],
)
def test_a_wrong_flag_says_which(argv: list[str], message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        _spec(_parsed(*argv))


def test_wait_defaults_to_the_terminal() -> None:
    assert _parsed("--id", "w", "--image", "i").wait is None  # decided at run time
    assert _parsed("--wait").wait is True
    assert _parsed("--no-wait").wait is False
