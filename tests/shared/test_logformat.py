"""The one log line format, the secret filter and the quiet health checks of both programs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lightd_agent.logs import configure_logging
from lightd_shared.logformat import JsonFormatter, RedactingFilter
from tests.harness.servers import serve

SECRET = "lightd_0123456789abcdef0123456789abcdef"


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("lightd.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_utc_z_time_and_extra_fields() -> None:
    line = JsonFormatter().format(_record("server %s failed", "s1", server="s1", attempt=2))
    entry = json.loads(line)
    assert entry["message"] == "server s1 failed"
    assert entry["level"] == "warning" and entry["logger"] == "lightd.test"
    assert entry["time"].endswith("Z")
    assert entry["server"] == "s1" and entry["attempt"] == 2


def test_secrets_bearer_values_and_token_queries_are_masked() -> None:
    record = _record(
        "GET /ws?token=abc.def.ghi with Authorization: Bearer xyz and %s", SECRET, peer=SECRET
    )
    assert RedactingFilter([SECRET]).filter(record)
    text = record.getMessage()
    assert SECRET not in text and "abc.def.ghi" not in text and "xyz" not in text
    assert "token=***" in text and "Bearer ***" in text
    assert getattr(record, "peer") == "***"  # noqa: B009 - an extra attribute


@pytest.mark.parametrize(
    "text",
    [
        "node n1 registered at 10.0.0.1:8080",
        f"spoke with {SECRET} inside",
        f"prefix{SECRET}suffix and again {SECRET}",
        "GET /ws?TOKEN=abc.def HTTP/1.1",
        "GET /x?a=1&Access_Token=zzz",
        "token=first-thing-in-the-line",
        "Authorization: bEaReR abc.def",
        "bearer without a value",
        "a tokens=list is not a query token",
        "caf\u00e9 ?to\u212aen=kelvin-sign-k",  # IGNORECASE folds the Kelvin sign into k
        "Bearer\u00a0nbsp-separated",
        "",
    ],
)
def test_the_quick_check_never_changes_what_is_masked(text: str) -> None:
    # the filter skips its substitutions when a line cannot hold a secret; whatever it
    # skips, the full masking must have left unchanged
    redactor = RedactingFilter([SECRET])
    assert redactor._clean(text) == redactor._mask(text)
    assert SECRET not in redactor._clean(text)


def test_the_agent_installs_the_filter_with_its_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging("info", json_format=True, secrets=[SECRET])
        logging.getLogger("lightd_agent.test").warning("remote token is %s", SECRET)
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert SECRET not in err
    assert json.loads(err.strip().splitlines()[-1])["message"] == "remote token is ***"


@pytest.mark.parametrize("formatter", [JsonFormatter(), logging.Formatter("%(message)s")])
def test_secrets_in_tracebacks_are_masked(formatter: logging.Formatter) -> None:
    try:
        raise RuntimeError(f"GET /ws?token={SECRET} failed with Bearer abc.def.ghi and {SECRET}")
    except RuntimeError:
        record = logging.LogRecord(
            "lightd.test", logging.ERROR, __file__, 1, "it broke", None, sys.exc_info()
        )
    record.stack_info = f"Stack (most recent call last):\n  token={SECRET}"
    assert RedactingFilter([SECRET]).filter(record)
    line = formatter.format(record)
    assert SECRET not in line and "abc.def.ghi" not in line
    assert "RuntimeError" in line and "Bearer ***" in line and "token=***" in line
    if isinstance(formatter, JsonFormatter):
        entry = json.loads(line)
        assert "Traceback" in entry["exception"] and "***" in entry["exception"]
        assert SECRET not in entry["stack"]


def _agent_logging(level: str) -> None:
    configure_logging(level, json_format=True)


def _coordinator_logging(level: str) -> None:
    from lightd_coordinator.config import LoggingSettings
    from lightd_coordinator.logs import configure_logging as configure_coordinator

    configure_coordinator(LoggingSettings(level=level, format="json", output="stderr"))  # type: ignore[arg-type]


def _health_app() -> Starlette:
    async def health(request: Request) -> Response:
        failing = request.query_params.get("fail") == "1"
        return JSONResponse({"status": "degraded" if failing else "ok"}, 503 if failing else 200)

    async def other(request: Request) -> Response:
        return JSONResponse({})

    return Starlette(routes=[Route("/health", health), Route("/containers", other)])


@pytest.mark.parametrize("configure", [_agent_logging, _coordinator_logging])
def test_health_checks_are_not_logged_at_info_but_failing_ones_are(
    configure: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """Both programs, behind a real uvicorn: a compose health check every 5 s floods no log."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    # as in the programs: uvicorn's access logger follows the root's level (other tests' servers
    # set it to warning)
    access = logging.getLogger("uvicorn.access")
    saved_access = access.level
    access.setLevel(logging.NOTSET)

    def access_lines(level: str) -> list[str]:
        configure(level)
        with serve(_health_app(), log_config=None, log_level=None) as url:
            for _ in range(3):
                assert httpx.get(f"{url}/health").status_code == 200
            assert httpx.get(f"{url}/health?fail=1").status_code == 503
            assert httpx.get(f"{url}/containers").status_code == 200
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
        return [
            f"{entry['level']} {entry['message']}"
            for entry in lines
            if entry["logger"] == "uvicorn.access"
        ]

    try:
        at_info = access_lines("info")
        at_debug = access_lines("debug")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        access.setLevel(saved_access)
    assert not [line for line in at_info if "/health HTTP" in line], at_info
    assert any(line.startswith("info") and "/health?fail=1" in line for line in at_info)
    assert any(line.startswith("info") and "/containers" in line for line in at_info)
    assert len([line for line in at_debug if line.startswith("debug") and "/health " in line]) == 3
