"""The session's secret check itself: it must fail a run whose tests logged a secret.

Each case runs an inner pytest session in its own process with the real plugin
(``-p tests.harness.leakcheck``), so the inner secrets never reach this session's registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.secrets import find_leaks

ROOT = Path(__file__).resolve().parents[1]
SECRET = "lightd_" + "c0ffee" * 5 + "ab"

INNER = f'''
import logging
from pathlib import Path

from tests.harness.secrets import register

SECRET = "{SECRET}"
register(SECRET)


def test_prints(mode):
    print("token is", SECRET if mode == "leaky" else "lightd_c0ff…")
    assert True


def test_logs(mode):
    logging.getLogger("x").warning("sending %s", SECRET if mode == "leaky" else "***")
    assert True


def test_log_file(tmp_path, mode):
    text = "Authorization: Bearer " + SECRET if mode == "leaky" else "all masked: lightd_c0ff…"
    (tmp_path / "agent.log").write_text(text + "\\n")
'''

CONFTEST = """
import pytest


def pytest_addoption(parser):
    parser.addoption("--mode", default="clean")


@pytest.fixture
def mode(request):
    return request.config.getoption("--mode")
"""


def _run(pytester: pytest.Pytester, mode: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest_subprocess(
        "-p", "tests.harness.leakcheck", "-p", "no:cacheprovider", f"--mode={mode}",
        "-o", "addopts=", "-o", "filterwarnings=error", "-W", "error",
    )  # fmt: skip


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester


def test_a_logged_secret_fails_the_session(inner: pytest.Pytester) -> None:
    result = _run(inner, "leaky")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*secrets leaked*",
            "3 secret(s) of the tests appear in logs or captured output:",
            "*agent.log: secret lightd…*Bearer <SECRET>*",
            "*Captured stdout call of test_inner.py::test_prints: secret lightd…*",
            "*Captured log call of test_inner.py::test_logs: secret lightd…*",
        ],
        consecutive=False,
    )
    assert SECRET not in result.stdout.str()  # the report masks it too


def test_a_clean_session_passes(inner: pytest.Pytester) -> None:
    result = _run(inner, "clean")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert "secrets leaked" not in result.stdout.str()


def test_find_leaks_reads_log_files_and_captured_text(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "coordinator.log.1").write_text(f"x\nkey={SECRET}\n")
    (tmp_path / "a" / "notes.txt").write_text(SECRET)  # not a log
    leaks = find_leaks([tmp_path], [("captured stdout of t", "fine")], frozenset({SECRET}))
    assert [(Path(leak.where).name, leak.line) for leak in leaks] == [
        ("coordinator.log.1", f"key={SECRET}")
    ]
    assert SECRET not in str(leaks[0])
    assert find_leaks([tmp_path], [("c", f"Bearer {SECRET}")], frozenset({SECRET}))[-1].where == "c"
