"""Fixtures shared by every test layer."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import app.keyring
from app.security.keys import load_key_pair

ROOT = Path(__file__).resolve().parent.parent

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 set; rich reads them once, when a
# Console is made (the CLI's, at import), and would wrap at 80 columns for good. Without
# them it reads the size when it prints, so a test can set COLUMNS as it needs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

# Shared, noisy machines: no per-example deadlines (timing belongs in bench/). In CI the
# examples are derandomized so a run is reproducible; locally they explore afresh each run.
# Two budgets: `dev` (the default: `make test`) runs a fifth of each property's examples,
# `ci` (`make test-all` passes --hypothesis-profile=ci) the full budgets. A test that sets its
# own budget scales it with tests.budgets.examples(N) so both profiles apply to it.
_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("KPR_CI") == "1",
)
settings.register_profile("ci", _COMMON, max_examples=100)
settings.register_profile("dev", _COMMON, max_examples=20)
settings.load_profile("dev")


@pytest.fixture(scope="session", autouse=True)
def _keys_parsed_once() -> Iterator[None]:
    """Every app a test starts loads the same development keys from the files
    `write_dev_pki` wrote: parsing and checking an RSA key costs ~40 ms, and some 400 apps
    start per run. The keyring still reads the files each time; only the parse of identical
    bytes is remembered (a pure function of them; other bytes, and bytes that fail, are
    parsed afresh)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(app.keyring, "load_key_pair", functools.cache(load_key_pair))
        yield


def find_reference_dir() -> Path | None:
    """The shared reference folder: KPR_REFERENCE_DIR when set (CI: then it must exist),
    else ../shared/reference beside the checkout, else None (a laptop without it)."""
    env = os.environ.get("KPR_REFERENCE_DIR")
    if env:
        path = Path(env)
        if not path.is_absolute():
            path = (ROOT / path).resolve()
        if not path.is_dir():
            raise RuntimeError(f"KPR_REFERENCE_DIR={env} is set but {path} is not a directory")
        return path
    default = (ROOT / ".." / "shared" / "reference").resolve()
    return default if default.is_dir() else None


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = find_reference_dir()
    if path is None:
        pytest.skip("reference data not found (set KPR_REFERENCE_DIR)")
    return path


def _ci() -> bool:
    return os.environ.get("KPR_CI") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skipped PostgreSQL, reference or tool test is a failure."""
    if not _ci():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(
                f"KPR_CI=1: {len(skipped)} test(s) were skipped; CI allows none", red=True
            )
