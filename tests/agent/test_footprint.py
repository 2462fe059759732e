"""The agent's footprint: the malloc arena cap of ``lightd run`` (``footprint.py``), the
libraries only a feature in use may load, and the modules ``lightd`` never lets its
libraries import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

from lightd_agent.footprint import (
    UNUSED_MODULES,
    HeapTrimmer,
    limit_malloc_arenas,
    malloc_trim,
)
from tests.harness.wait import wait_until


def test_the_arena_cap_applies_on_glibc() -> None:
    assert limit_malloc_arenas() is True  # the project's machines run Debian (glibc)


def test_an_operators_malloc_arena_max_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


# Libraries an idle agent never needs: each is loaded only by the feature that uses it (a cron
# expression read, an S3 backup target, the first signed command, the first backup). Loaded at
# start, they would sit in every agent's resident memory (croniter alone is about 2.3 MiB; jose
# brings cryptography, about 9 MiB; pathspec 0.3 MiB).
_LAZY = ("croniter", "boto3", "botocore", "jose", "cryptography", "pathspec")


def test_building_the_agent_loads_no_feature_only_library(tmp_path: Path) -> None:
    script = f"""
import json, sys
from pathlib import Path
from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig
config = AgentConfig.model_validate(
    {{"storage": {{"base_path": {str(tmp_path)!r}}}, "authorization": {{"token": "t" * 32}}}}
)
create_app(config)
print(json.dumps(sorted(m for m in {_LAZY!r} if m in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_cron_expression_loads_croniter_when_first_read() -> None:
    script = """
import sys
from lightd_agent.schedules.cron import check_cron
assert "croniter" not in sys.modules
check_cron("0 4 * * *", "Europe/Berlin")
print("croniter" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_malloc_trim_is_there_on_glibc() -> None:
    assert malloc_trim() is not None  # True or False: whether it freed anything


def test_the_heap_trimmer_trims_until_stopped() -> None:
    trimmer = HeapTrimmer(interval=0.01)
    assert trimmer.start() is True
    try:
        wait_until(lambda: trimmer.trims >= 3, 10.0, what="three trims")
    finally:
        trimmer.stop()
    stopped_at = trimmer.trims
    assert trimmer._thread is not None and not trimmer._thread.is_alive()
    assert trimmer.trims == stopped_at  # no trim after stop


def _python(script: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [sys.executable, *options, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_lightd_builds_and_serves_the_agent_without_the_modules_it_skips(tmp_path: Path) -> None:
    # The `lightd` program (its cli module first, as the console script), a real agent app
    # on a loopback port, one authorised request with a body model answered through FastAPI;
    # no skipped module (nor what httpx's CLI brings) loaded on the way.
    script = f"""
import json, socket, sys, threading, time
import lightd_agent.cli
import httpx, uvicorn
from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig
config = AgentConfig.model_validate(
    {{"storage": {{"base_path": {str(tmp_path)!r}}}, "authorization": {{"token": "t" * 32}}}}
)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(create_app(config), port=port, log_config=None))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.monotonic() + 30
while not server.started and time.monotonic() < deadline:
    time.sleep(0.01)
answer = httpx.post(
    f"http://127.0.0.1:{{port}}/containers",
    json={{"id": "x"}},
    headers={{"Authorization": "Bearer " + "t" * 32}},
)
server.should_exit = True
thread.join(10)
loaded = [m for m in {(*UNUSED_MODULES, "rich", "pygments")!r} if sys.modules.get(m)]
print(json.dumps([answer.status_code, loaded, httpx.main.__module__]))
"""
    status, loaded, main_module = json.loads(_python(script))
    assert status == 422  # the body model's validation answered (the image is missing)
    assert loaded == []
    assert main_module == "httpx"  # httpx's own fallback, not its CLI in httpx._main


@pytest.mark.docker
def test_the_docker_sdk_reads_dockers_answers_without_a_charset_guesser() -> None:
    # requests (the Docker SDK's HTTP library) imports a charset guesser that loads every
    # multibyte codec; lightd run skips it. A real Docker error must still read as Docker
    # wrote it, and requests' "no guesser" warning, made an error here, must not be raised.
    script = """
import json, sys
import lightd_agent.cli
import docker
client = docker.from_env()
try:
    client.containers.get("lightd-footprint-no-such-container")
except docker.errors.NotFound as exc:
    explanation = exc.explanation
codecs = sorted(m for m in sys.modules if m.startswith("_codecs_"))
print(json.dumps([explanation, codecs, sys.modules.get("charset_normalizer") is None]))
"""
    options = ("-W", "error:Unable to find acceptable character detection:Warning")
    explanation, codecs, skipped = json.loads(_python(script, options=options))
    assert explanation == "No such container: lightd-footprint-no-such-container"
    assert codecs == []  # the multibyte codecs the guesser would have loaded
    assert skipped is True


def test_the_agent_requires_a_requests_that_imports_without_a_guesser() -> None:
    # requests before 2.32 fails to import without a charset guesser (no fallback), and the
    # Docker SDK alone allows 2.26: the agent's own requirement is what keeps lightd run up.
    pins = [r for r in requires("lightd-agent") or [] if re.match(r"requests\b", r)]
    assert pins == ["requests>=2.32"]


def test_a_module_already_imported_is_not_skipped() -> None:
    script = """
import json, sys
import pydantic.v1
from lightd_agent.footprint import skip_unused_imports
skipped = skip_unused_imports()
print(json.dumps([skipped, sys.modules["pydantic.v1"] is not None]))
"""
    skipped, kept = json.loads(_python(script))
    assert kept is True
    assert "pydantic.v1" not in skipped
    assert set(skipped) <= set(UNUSED_MODULES)


def test_a_skipped_module_cannot_be_imported() -> None:
    script = """
import json
from lightd_agent.footprint import skip_unused_imports
skip_unused_imports(("json.tool",))
try:
    import json.tool
except ImportError:
    print("refused")
else:
    print("imported")
"""
    assert _python(script) == "refused"


_LOAD = """
import json, sys
from lightd_agent.app import create_app
from lightd_agent.config import load_config
config = load_config({path!r})
create_app(config)
print(json.dumps([config.server.port, "pydantic_settings" in sys.modules]))
"""


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "server": {"port": 8123},
                "storage": {"base_path": str(tmp_path)},
                "authorization": {"token": "t" * 32},
            }
        )
    )
    return path


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LIGHTD_")}
    env.update(extra)
    return env


def test_without_lightd_variables_the_config_is_read_without_pydantic_settings(
    tmp_path: Path,
) -> None:
    script = _LOAD.format(path=str(_config_file(tmp_path)))
    assert json.loads(_python(script, _environment())) == [8123, False]


def test_a_lightd_variable_in_any_case_still_overrides_the_file(tmp_path: Path) -> None:
    script = _LOAD.format(path=str(_config_file(tmp_path)))
    port, loaded = json.loads(_python(script, _environment(lightd_server__port="9001")))
    assert port == 9001  # matched case-insensitively, as pydantic-settings always did
    assert loaded is True
