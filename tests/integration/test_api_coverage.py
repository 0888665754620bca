"""Coverage (every municipality of the year), the municipality lists (shipped, imported), and
reminders to those who have not delivered (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kommuner.repository import replace_year
from app.kommuner.ssb import Kommune
from app.models import NotificationOutbox, Party, PartyContact, PartyKommune
from app.notify.remind import queue_reminders
from app.platform.settings import Settings
from tests.integration.seed import FID_OSLO, T0, Fault, add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def operator(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "ops", "operator"))


async def test_coverage_lists_all_422_municipalities_of_2018(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    await add_message(sessions, status="AVVIST", apprec_status="2", received_at=T0)
    await add_message(
        sessions,
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        received_at=T0 + timedelta(days=1),
        faults=[Fault(guid="g1", bruker_nr="B1", fid=FID_OSLO)],
        accepted=[("a1", "N", None), ("a2", "N", None)],
    )
    await add_message(sessions, received_at=T0 + timedelta(days=2), accepted=[("a3", "N", None)])
    await add_message(sessions, kommune="5001", status="AVVIST", apprec_status="2")
    await add_message(sessions, kommune="1201", environment="production")
    r = await client.get(
        "/api/v1/coverage", headers=operator, params={"year": 2018, "environment": "pilot"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["kommuner"]) == 422
    assert body["delivered"] == 1
    assert (body["deadline"], body["correction_deadline"]) == ("2019-01-15", "2019-03-21")
    by = {k["kommune_nr"]: k for k in body["kommuner"]}
    oslo = by["0301"]
    assert oslo["name"] == "Oslo"
    assert oslo["readable"] is True
    assert oslo["messages"] == 3
    assert oslo["first_readable_at"].startswith("2018-11-21T11:00")
    assert oslo["last_readable_at"].startswith("2018-11-22T11:00")
    assert oslo["best_apprec_status"] == "1"
    assert oslo["notifications_accepted"] == 3
    assert oslo["open_errors"] == 1
    assert oslo["on_time"] is True
    trondheim = by["5001"]
    assert (trondheim["readable"], trondheim["best_apprec_status"]) == (False, "2")
    assert trondheim["on_time"] is False  # the deadline of 2018 has passed, nothing readable
    assert by["1201"]["messages"] == 0  # production is another environment
    assert FID_OSLO not in r.text


async def test_coverage_of_2020_uses_the_2020_list(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = (await client.get("/api/v1/coverage", headers=operator, params={"year": 2021})).json()
    assert body["total"] == 356
    assert "5001" in {k["kommune_nr"] for k in body["kommuner"]}
    assert "1601" not in {k["kommune_nr"] for k in body["kommuner"]}


async def test_an_imported_list_replaces_the_shipped_one(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    async with sessions() as s:
        await replace_year(s, 2024, [Kommune(kommune_nr="0301", name="Oslo")])
        await replace_year(
            s,
            2024,
            [Kommune(kommune_nr="0301", name="Oslo"), Kommune(kommune_nr="1508", name="Ålesund")],
        )
        await s.commit()
    body = (await client.get("/api/v1/coverage", headers=operator, params={"year": 2024})).json()
    assert [(k["kommune_nr"], k["name"]) for k in body["kommuner"]] == [
        ("0301", "Oslo"),
        ("1508", "Ålesund"),
    ]


async def _register(sessions: Sessions, her_id: int, kommune: str, email: str) -> None:
    async with sessions() as s:
        party = Party(her_id=her_id, name=f"Kommune {kommune}")
        party.kommuner = [PartyKommune(kommune_nr=kommune)]
        party.contacts = [PartyContact(email=email, role="innsendingsansvarlig")]
        s.add(party)
        await s.commit()


async def test_reminders_go_only_to_those_without_a_readable_message_once_a_day(
    sessions: Sessions, settings: Settings
) -> None:
    await _register(sessions, 8000001, "0301", "oslo@kommune.example")
    await _register(sessions, 8000002, "5001", "trondheim@kommune.example")
    await _register(sessions, 8000003, "1201", "bergen@kommune.example")
    await add_message(sessions, kommune="0301")  # readable: no reminder
    await add_message(sessions, kommune="5001", status="AVVIST", apprec_status="2")
    await add_message(sessions, kommune="1201", environment="production")  # other environment
    now = datetime(2018, 12, 1, 9, 0, tzinfo=UTC)
    async with sessions() as s:
        first = await queue_reminders(s, settings, year=2018, environment="pilot", now=now)
        await s.commit()
    async with sessions() as s:
        again = await queue_reminders(s, settings, year=2018, environment="pilot", now=now)
        await s.commit()
    async with sessions() as s:
        tomorrow = await queue_reminders(
            s, settings, year=2018, environment="pilot", now=now + timedelta(days=1)
        )
        await s.commit()
    assert (first.missing, first.queued, first.already) == (2, 2, 0)
    assert (again.queued, again.already) == (0, 2)
    assert tomorrow.queued == 2
    async with sessions() as s:
        rows = list(await s.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))
    assert [(r.recipient, r.kind, r.message_id) for r in rows[:2]] == [
        ("bergen@kommune.example", "reminder", None),
        ("trondheim@kommune.example", "reminder", None),
    ]
    assert "Trondheim" in rows[1].subject or "5001" in rows[1].subject
    assert "pilotmottaket" in rows[1].body
    assert "Hei," in rows[1].body
    assert "oslo@kommune.example" not in {r.recipient for r in rows}


def test_the_shipped_lists_are_converted_not_copied(reference_dir: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "app" / "kommuner" / "data"
    for year in (2018, 2020):
        ours = (shipped / f"kommuner-{year}.json").read_bytes()
        theirs = (reference_dir / "kommuner" / f"ssb-klass-131-{year}.csv").read_bytes()
        assert ours != theirs
        assert b'"9999"' not in ours  # "Uoppgitt" is no municipality
