"""`kpr-mottak serve`'s defaults (the servers themselves run in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

from app.cli.root import default_workers


def test_serve_defaults_to_the_cores_it_may_use() -> None:
    assert default_workers() >= 1
    assert default_workers() <= (len(list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*"))) or 1)
