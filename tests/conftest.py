"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

# Shared, noisy machines: no per-example deadlines (timing belongs in bench/). In CI the
# examples are derandomized so a run is reproducible; locally they explore afresh each run.
settings.register_profile(
    "kpr",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("KPR_CI") == "1",
)
settings.load_profile("kpr")


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
