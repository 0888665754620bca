"""The running totals behind coverage and stats (SQLite and PostgreSQL): what each message adds
in its own transaction equals what the stored rows say and what a rebuild computes, across
corrections, both windows of a January message, and the partial days of a stats range."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app as cli
from app.intake import totals as totals_writer
from app.models import CoverageTotal, Finding, TotalsState
from app.query import coverage, stats, totals
from app.query.reporting import received_window
from tests.integration.seed import FID_OSLO, T0, Fault, add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]
WINDOWS = totals.windows_for("")


async def _history(sessions: Sessions) -> None:
    """Corrections by GUID and by an M row, a correction in another environment (none), a
    rejected message, a message without municipality, and one in January that belongs to two
    reporting years."""
    oslo = [Fault(guid=g, bruker_nr="B1", fid=FID_OSLO) for g in ("g1", "g2", "g3")]
    await add_message(sessions, status="OK_FEIL_I_DELMELDING", apprec_status="3", faults=oslo)
    await add_message(sessions, environment="production", accepted=[("g3", "N", None)])
    await add_message(
        sessions,
        received_at=T0 + timedelta(days=3),
        accepted=[("g1", "N", None), ("m2", "M", "g2")],
    )
    await add_message(sessions, status="AVVIST", apprec_status="2", received_at=T0 - timedelta(1))
    await add_message(sessions, kommune=None, faults=[Fault(rule_id="EBXML-CPA-UNKNOWN")])
    await add_message(
        sessions,
        kommune="4601",
        received_at=datetime(2019, 2, 1, 12, tzinfo=UTC),
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[Fault(guid="b1", rule_id="IPL-TYPEID-CODE"), Fault(guid="b2")],
        accepted=[("b3", "N", None)],
    )
    # a finding filed under another municipality the sender reports for counts there
    await add_message(sessions, kommune="1201", faults=[Fault(guid="x1", kommune_nr="4601")])


def _row(t: CoverageTotal) -> tuple[Any, ...]:
    return (
        t.environment,
        t.year,
        t.kommune_nr,
        t.messages,
        t.readable,
        t.first_readable_at,
        t.last_readable_at,
        t.best_rank,
        t.accepted,
        t.failing,
        t.corrected,
    )


async def _snapshot(sessions: Sessions) -> tuple[list[tuple[Any, ...]], list[tuple[int, Any]]]:
    async with sessions() as s:
        rows = sorted(_row(t) for t in await s.scalars(select(CoverageTotal)))
        fixes = sorted(
            (i, by) for i, by in await s.execute(select(Finding.id, Finding.corrected_by))
        )
    return rows, list(fixes)


async def test_what_each_message_adds_equals_the_rows_and_a_rebuild(sessions: Sessions) -> None:
    await _history(sessions)
    incremental = await _snapshot(sessions)
    async with sessions() as s:
        for env in ("pilot", "production"):
            for year in (2018, 2019):
                from_totals = await coverage.from_totals(s, env, year)
                entry = WINDOWS.calendar.get(year)
                assert entry is not None
                from_rows = await coverage.from_rows(s, env, *received_window(entry))
                assert from_totals == from_rows, (env, year)
        oslo = (await coverage.from_totals(s, "pilot", 2018)).open_errors["0301"]
        assert oslo == 1  # g3 was stored in production only: still open in the pilot
        january = await coverage.from_totals(s, "pilot", 2019)
        assert january.deliveries["4601"].best_apprec_status == "3"
        assert (await coverage.from_totals(s, "pilot", 2018)).deliveries["4601"].messages == 1
        await totals_writer.rebuild(s, WINDOWS)
        await s.commit()
    assert await _snapshot(sessions) == incremental
    corrected = [by for _, by in incremental[1] if by is not None]
    assert len(corrected) == 2  # g1 by its GUID, g2 by the M row


MIDNIGHT = T0.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0 - timedelta(days=2, hours=5), T0 + timedelta(days=3, hours=1)),  # whole days
        (T0 - timedelta(hours=1), T0 + timedelta(days=3, hours=1)),  # T0 on a partial day
        (T0 - timedelta(days=3), T0 + timedelta(hours=1)),  # ... at the end
        (T0 - timedelta(hours=1), T0 + timedelta(hours=1)),  # within one day
        (MIDNIGHT - timedelta(days=2), MIDNIGHT + timedelta(days=4)),  # no partial day at all
    ],
)
async def test_stats_rule_counts_from_totals_and_partial_days(
    sessions: Sessions, start: datetime, end: datetime
) -> None:
    await _history(sessions)
    async with sessions() as s:
        by_rule = await stats.findings_by_rule(s, start, end, None)
        # the same range read from the findings alone
        await s.execute(delete(TotalsState))
        assert not await totals.built(s)
        assert by_rule == await stats.findings_by_rule(s, start, end, None)
        await s.rollback()
        pilot = await stats.findings_by_rule(s, start, end, "pilot")
    counts = {c.key: c.count for c in by_rule}
    assert counts == {"EBXML-CPA-UNKNOWN": 1, "IPL-FID-INVALID": 4}
    assert {c.key: c.count for c in pilot} == counts


async def test_coverage_reads_the_rows_while_the_calendar_differs(
    sessions: Sessions, client: httpx.AsyncClient
) -> None:
    await _history(sessions)
    headers = auth(await token(sessions, "ops", "operator"))
    params: dict[str, str | int] = {"year": 2018, "environment": "pilot"}
    fresh = (await client.get("/api/v1/coverage", headers=headers, params=params)).json()
    async with sessions() as s:
        await s.execute(delete(CoverageTotal))  # a wrong total shows if it were still read
        state = await s.get(TotalsState, 1)
        assert state is not None
        state.calendar_sha256 = "another calendar"
        await s.commit()
    stale = (await client.get("/api/v1/coverage", headers=headers, params=params)).json()
    assert stale == fresh
    oslo = next(k for k in stale["kommuner"] if k["kommune_nr"] == "0301")
    assert (oslo["messages"], oslo["open_errors"], oslo["best_apprec_status"]) == (3, 1, "1")


async def test_db_upgrade_rebuilds_stale_totals(
    sessions: Sessions, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    await _history(sessions)
    before, _ = await _snapshot(sessions)
    async with sessions() as s:
        await s.execute(delete(CoverageTotal))
        await s.execute(delete(TotalsState))
        await s.commit()
    monkeypatch.setenv("KPR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.chdir(tmp_path)  # no stray .env is read

    def upgrade() -> str:  # the CLI runs its own event loop
        result = CliRunner().invoke(cli, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        return result.output

    assert "running totals rebuilt" in await asyncio.to_thread(upgrade)
    assert (await _snapshot(sessions))[0] == before
    assert "rebuilt" not in await asyncio.to_thread(upgrade)  # current: nothing to do


@pytest.mark.parametrize("environment", [None, "pilot", "production"])
async def test_stats_counts_by_day_municipality_status_and_rule(
    sessions: Sessions, client: httpx.AsyncClient, environment: str | None
) -> None:
    await _history(sessions)
    headers = auth(await token(sessions, "ops", "operator"))
    params = {"received_from": "2018-11-18T12:00:00Z", "received_to": "2018-11-23T12:30:00Z"}
    if environment:
        params["environment"] = environment
    r = await client.get("/api/v1/stats", headers=headers, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    if environment == "production":
        assert (body["by_day"], body["by_kommune"]) == ({"2018-11-20": 1}, {"0301": 1})
        assert (body["by_status"], body["by_rule"]) == ({"OK": 1}, {})
        return
    production = 1 if environment is None else 0  # message 2 counts only without a filter
    assert body["by_day"] == {"2018-11-19": 1, "2018-11-20": 3 + production, "2018-11-23": 1}
    assert body["by_kommune"] == {"-": 1, "0301": 3 + production, "1201": 1}
    assert body["by_status"] == {"AVVIST": 1, "OK": 3 + production, "OK_FEIL_I_DELMELDING": 1}
    assert body["by_rule"] == {"EBXML-CPA-UNKNOWN": 1, "IPL-FID-INVALID": 4}
