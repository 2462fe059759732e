"""A pytest plugin: after the session, no registered secret may appear in any log.

It keeps every output pytest captured (stdout, stderr and log records of every phase of every
test, failed or passed) and, when the session ends, reads every log file under the session's
temporary directory (where the tests' agents, coordinators and remotes write theirs). Any
registered secret (:mod:`tests.harness.secrets`) found there fails the run, naming the file or
test and the line (with the secret itself masked).
"""

from __future__ import annotations

import pytest

from tests.harness.secrets import find_leaks, registered

_captured: dict[str, str] = {}
"""``"<section> of <test id>"`` -> text; a later phase's report repeats the earlier sections."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section, text in report.sections:
        _captured[f"{section} of {report.nodeid}"] = text
    if report.failed and report.longrepr is not None:
        _captured[f"failure report ({report.when}) of {report.nodeid}"] = str(report.longrepr)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    roots = [factory.getbasetemp()] if factory is not None else []
    leaks = find_leaks(roots, _captured.items(), registered())
    _captured.clear()
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(leaks)} secret(s) of the tests appear in logs or captured output:"]
    lines += [f"  {leak}" for leak in leaks[:50]]
    if reporter is not None:
        reporter.write_sep("=", "secrets leaked", red=True)
        for line in lines:
            reporter.write_line(line)
    else:  # pragma: no cover - the terminal reporter is always there in a normal run
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
