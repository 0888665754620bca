"""Migrations go up, down and up again on both databases, and match the models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from app import migrate
from app.platform.db import create_engine
from tests.integration.databases import dispose_database, fresh_database


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_up_down_up_without_drift(kind: str, tmp_path: Path) -> None:
    url = fresh_database(kind, tmp_path)
    try:
        migrate.upgrade(url)
        assert "(head)" in migrate.current(url)
        migrate.check(url)  # raises when models and migrations disagree
        migrate.downgrade(url, "base")
        assert migrate.current(url) == ""
        migrate.upgrade(url)
        assert "(head)" in migrate.current(url)
        migrate.check(url)
    finally:
        dispose_database(url)


async def _execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    rows: list[tuple[object, ...]] = []
    try:
        async with engine.begin() as conn:
            for sql in statements:
                result = await conn.execute(text(sql))
                if result.returns_rows:
                    rows.extend(tuple(r) for r in result.all())
    finally:
        await engine.dispose()
    return rows


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_history_moves_to_its_environment_with_dates_and_ranges(kind: str, tmp_path: Path) -> None:
    """0002 -> 0003 keeps every stored notification under its message's environment, its
    event in iplos_event with a real date, the løpenummer as ranges, and the brukerNr pairs."""
    url = fresh_database(kind, tmp_path)
    now = "2018-11-20 12:00:00+00:00"
    try:
        migrate.upgrade(url, "0002")
        asyncio.run(
            _execute(
                url,
                "INSERT INTO message (id, received_at, request_id, size_bytes, status, "
                f"environment) VALUES (1, '{now}', 'r1', 1, 'OK', 'pilot'), "
                f"(2, '{now}', 'r2', 1, 'OK', 'production')",
                "INSERT INTO iplos_notification (id, message_id, kommune_nr, guid, status, "
                "lopenr, forrige_guid, event, tjeneste_type, hendelse_dato, bruker_nr) VALUES "
                "(1, 1, '0301', 'a', 'N', 1, 'z', 'TjenesteStart', '18', '2018-01-03', 'B1'), "
                "(2, 1, '0301', 'b', 'N', 2, 'a', 'TjenesteSlutt', '19', '2018-01-04', 'B2'), "
                "(3, 2, '0301', 'c', 'N', 4, 'b', 'TjenesteStart', '20', '2018-02-01', 'B3')",
                "INSERT INTO iplos_bruker (kommune_nr, bruker_nr, fid, updated_at) VALUES "
                f"('0301', 'B1', '01010112345', '{now}')",
            )
        )
        migrate.upgrade(url)
        rows = asyncio.run(
            _execute(
                url,
                "SELECT n.environment, n.guid, e.kind, e.hendelse_dato FROM iplos_notification n "
                "JOIN iplos_event e ON e.notification_id = n.id ORDER BY n.id",
                "SELECT environment, kommune_nr, received FROM iplos_kommune_state "
                "ORDER BY environment",
                "SELECT environment, bruker_nr FROM iplos_bruker",
            )
        )
        days = [str(r[3])[:10] for r in rows[:3]]
        assert [r[:3] for r in rows[:3]] == [
            ("pilot", "a", "TjenesteStart"),
            ("pilot", "b", "TjenesteSlutt"),
            ("production", "c", "TjenesteStart"),
        ]
        assert days == ["2018-01-03", "2018-01-04", "2018-02-01"]
        ranges = {r[0]: r[2] for r in rows[3:5]}
        decoded = {k: json.loads(v) if isinstance(v, str) else v for k, v in ranges.items()}
        assert decoded == {"pilot": [[1, 2]], "production": [[4, 4]]}
        assert rows[5] == ("pilot", "B1")
        # new rows get fresh ids after the copied ones (PostgreSQL's sequence was moved on)
        asyncio.run(
            _execute(
                url,
                "INSERT INTO iplos_notification (message_id, environment, kommune_nr, guid, "
                "status, forrige_guid, bruker_nr, content_sha256) VALUES "
                "(1, 'pilot', '0301', 'd', 'N', 'c', 'B4', 'x')",
            )
        )
        migrate.downgrade(url, "0002")
        back = asyncio.run(_execute(url, "SELECT guid, hendelse_dato FROM iplos_notification"))
        assert sorted(str(g) for g, _ in back) == ["a", "b", "c", "d"]
    finally:
        dispose_database(url)
