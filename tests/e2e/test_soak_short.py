"""The crash soak's short form (`make soak` runs the long one): two instances on a throw-away
PostgreSQL under load, a few SIGKILLs of one instance, of both and of PostgreSQL, then every
check of bench/soak.py against what the clients saw."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.pgcluster import pg_binaries
from bench.soak import soak

# the second tier (`make test-all`): a soak of 40 s and more
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_short_soak_keeps_every_promise(tmp_path: Path) -> None:
    if pg_binaries() is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    report = await soak(
        kills=4, max_seconds=40.0, clients=2, workdir=tmp_path, seed=3, outbox_wait=30.0
    )
    assert report["violations"] == []
    assert report["kills"] == {"one_instance": 2, "both_instances": 1, "postgresql": 1} or (
        report["kills_total"] == 4
    )
    assert report["acknowledged"] == report["messages"]
    assert isinstance(report["messages"], int)
    assert report["messages"] > 0
