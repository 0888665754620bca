"""bench/queries.py at a tiny scale on PostgreSQL: it seeds, measures every endpoint, and
prints EXPLAIN ANALYZE for a miss (the target forced to 0 ms). No assertion on time."""

from __future__ import annotations

import pytest

from bench import queries
from tests.integration.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
)

# the second tier (`make test-all`): the benchmarks' smoke tests
pytestmark = pytest.mark.slow


def test_the_queries_bench_runs_at_tiny_scale(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_postgres_database(create_postgres_database())  # skips (or fails in CI) without one
    monkeypatch.setattr(queries, "TARGET_MS", 0.0)
    monkeypatch.setattr(queries, "MISSED", {})
    code = queries.main(["--postgres", postgres_admin_url(), "--messages", "300", "--repeat", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "seeded 300 messages, 3,000 findings" in out
    for name, _path, _params in queries._cases(300):
        assert f"| {name} |" in out
    assert "### feilliste 0301 open" in out
    assert "EXPLAIN" not in out  # the plans themselves are printed, not the statement
    assert "Execution Time" in out
