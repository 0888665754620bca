"""Issue 21 item 9 on SQLite and PostgreSQL: municipalities as they are numbered in the
reporting year, through the HTTP intake (IPL-KOMMUNE-YEAR, one-to-one renumbering and the
split of Ålesund), and coverage and the feedback of 2024 under the 2024 numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev import devsetup
from app.dev.devpki import DevPki
from app.dev.sample import build_sample, wrap_in_msghead
from app.feedback.refresh import refresh_once
from app.kommuner.repository import replace_year
from app.kommuner.ssb import Kommune
from app.models import NotificationOutbox, Party, PartyContact, PartyKommune
from app.notify.remind import queue_reminders
from app.parties import repository as party_repo
from app.platform.settings import Settings
from tests.integration.messages import DEMO_HER, PILOT_HER, epj_message, post
from tests.integration.seed import add_message, auth, token
from tests.integration.test_intake_business import apprec_of, newest, notifications, rule_ids
from tests.integration.test_intake_content_rows import stored_guids

Sessions = async_sessionmaker[AsyncSession]


async def _also_reports_for(sessions: Sessions, settings: Settings, kommune: str) -> None:
    """The demo party (0301) registered for `kommune` as well."""
    async with sessions() as s:
        await party_repo.upsert_party(s, devsetup.demo_party(settings.pki_dir, kommune=kommune))
        await s.commit()


def _head(kommune: str, year: int, seed: int = 9) -> bytes:
    return wrap_in_msghead(
        build_sample(3, kommune, seed=seed, year=year),
        int(DEMO_HER),
        int(PILOT_HER),
        str(uuid.uuid4()),
        datetime.now(UTC).replace(microsecond=0),
    )


def _guids(head: bytes) -> set[str]:
    return {(n.get("notifikasjonGUID") or "").lower() for n in notifications(head)}


async def test_halden_under_its_old_number_in_2024_is_warned_with_the_new_one(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _also_reports_for(sessions, settings_with_pki, "3001")
    head = _head("3001", 2024)
    apprec = apprec_of(pki, await post(intake, epj_message(pki, head)))
    assert (apprec.status, apprec.errors) == ("1", ())
    assert await stored_guids(sessions) == _guids(head)
    _, findings = await newest(sessions)
    (warning,) = [f for f in findings if f.rule_id == "IPL-KOMMUNE-YEAR"]
    assert "Kommunenummer 3001 finnes ikke i SSBs kommuneliste for 2024" in warning.detail
    assert "Halden kommunenummer 3101" in warning.detail
    assert warning.kommune_nr == "3001"


async def test_a_party_registered_under_the_old_number_reports_under_the_new_one(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _also_reports_for(sessions, settings_with_pki, "3001")
    head = _head("3101", 2024)
    apprec = apprec_of(pki, await post(intake, epj_message(pki, head)))
    assert (apprec.status, apprec.errors) == ("1", ())
    _, findings = await newest(sessions)
    assert not rule_ids(findings) & {"IPL-KOMMUNE-YEAR", "IPL-KOMMUNE-NOT-ALLOWED"}
    assert await stored_guids(sessions) == _guids(head)


async def test_the_new_number_for_2023_is_warned_with_the_old_one(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _also_reports_for(sessions, settings_with_pki, "3101")
    apprec = apprec_of(pki, await post(intake, epj_message(pki, _head("3101", 2023))))
    assert apprec.status == "1"
    _, findings = await newest(sessions)
    (warning,) = [f for f in findings if f.rule_id == "IPL-KOMMUNE-YEAR"]
    assert "for 2023" in warning.detail
    assert "Halden kommunenummer 3001" in warning.detail


async def test_alesund_1507_in_2024_has_no_single_successor_and_haram_is_another_party(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _also_reports_for(sessions, settings_with_pki, "1507")
    apprec = apprec_of(pki, await post(intake, epj_message(pki, _head("1507", 2024))))
    assert apprec.status == "1"
    _, findings = await newest(sessions)
    (warning,) = [f for f in findings if f.rule_id == "IPL-KOMMUNE-YEAR"]
    assert "1508 Ålesund og 1580 Haram" in warning.detail
    assert "ingen enkelt etterfølger" in warning.detail
    # a split makes another municipality: Ålesund's party may not report for Haram
    refused = apprec_of(pki, await post(intake, epj_message(pki, _head("1580", 2024, seed=10))))
    assert refused.status == "2"
    _, findings = await newest(sessions)
    assert "IPL-KOMMUNE-NOT-ALLOWED" in rule_ids(findings)


async def test_an_imported_list_of_the_year_decides_in_the_intake(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _also_reports_for(sessions, settings_with_pki, "3001")
    async with sessions() as s:
        await replace_year(s, 2024, [Kommune(kommune_nr="3001", name="Halden")])
        await s.commit()
    apprec = apprec_of(pki, await post(intake, epj_message(pki, _head("3001", 2024))))
    assert apprec.status == "1"
    _, findings = await newest(sessions)
    assert "IPL-KOMMUNE-YEAR" not in rule_ids(findings)


# --- coverage and the feedback of 2024 -------------------------------------------------------


@pytest.fixture
async def operator(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "ops", "operator"))


async def test_coverage_of_2024_lists_357_municipalities_under_the_new_numbers(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    await add_message(sessions, kommune="3101", received_at=datetime(2024, 11, 20, tzinfo=UTC))
    r = await client.get(
        "/api/v1/coverage", headers=operator, params={"year": 2024, "environment": "pilot"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["kommuner"]) == 357
    by = {k["kommune_nr"]: k for k in body["kommuner"]}
    assert not {"3001", "1507", "5401"} & set(by)
    assert (by["3101"]["name"], by["3101"]["readable"]) == ("Halden", True)
    assert by["1508"]["name"] == "Ålesund"
    assert by["1580"]["name"] == "Haram"
    assert by["5610"]["name"] == "Kárášjohka - Karasjok"
    assert body["delivered"] == 1
    # the year before keeps the 2020 list
    before = (await client.get("/api/v1/coverage", headers=operator, params={"year": 2023})).json()
    assert before["total"] == 356
    assert "3001" in {k["kommune_nr"] for k in before["kommuner"]}


async def test_a_message_under_the_old_number_counts_for_the_new_one_in_coverage(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    await add_message(
        sessions,
        kommune="3101",
        status="AVVIST",
        apprec_status="2",
        received_at=datetime(2024, 11, 19, tzinfo=UTC),
    )
    await add_message(
        sessions,
        kommune="3001",
        received_at=datetime(2024, 11, 20, tzinfo=UTC),
        accepted=[("a1", "N", None), ("a2", "N", None)],
    )
    await add_message(sessions, kommune="3001", received_at=datetime(2024, 11, 22, tzinfo=UTC))
    body = (
        await client.get(
            "/api/v1/coverage", headers=operator, params={"year": 2024, "environment": "pilot"}
        )
    ).json()
    assert body["total"] == 357
    by = {k["kommune_nr"]: k for k in body["kommuner"]}
    assert "3001" not in by
    halden = by["3101"]
    assert (halden["readable"], halden["messages"], halden["best_apprec_status"]) == (
        True,
        3,
        "1",
    )
    assert halden["first_readable_at"].startswith("2024-11-20")
    assert halden["last_readable_at"].startswith("2024-11-22")
    assert halden["notifications_accepted"] == 2
    assert body["delivered"] == 1


async def test_reminders_of_2024_use_the_2024_numbers(
    sessions: Sessions, settings: Settings
) -> None:
    async with sessions() as s:
        for her, kommune in ((8000011, "3001"), (8000012, "5401")):
            party = Party(her_id=her, name=f"Kommune {kommune}")
            party.kommuner = [PartyKommune(kommune_nr=kommune)]
            party.contacts = [
                PartyContact(email=f"k{kommune}@kommune.example", role="innsendingsansvarlig")
            ]
            s.add(party)
        await s.commit()
    # Halden delivered under its old number; Tromsø (5401, from 2024 5501) did not
    await add_message(sessions, kommune="3001", received_at=datetime(2024, 11, 20, tzinfo=UTC))
    async with sessions() as s:
        report = await queue_reminders(
            s, settings, year=2024, environment="pilot", now=datetime(2024, 12, 1, 9, tzinfo=UTC)
        )
        await s.commit()
    assert (report.missing, report.queued) == (1, 1)
    async with sessions() as s:
        (row,) = list(await s.scalars(select(NotificationOutbox)))
    assert row.recipient == "k5401@kommune.example"
    assert row.kommune_nr == "5501"
    assert "Tromsø kommune (5501)" in row.subject


async def test_the_feedback_of_2024_lists_357_municipalities_under_the_new_numbers(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    await add_message(
        sessions,
        kommune="3101",
        environment="production",
        receiver="122612",
        received_at=datetime(2024, 11, 20, tzinfo=UTC),
    )
    await refresh_once(sessions, settings)
    r = await client.get("/api/v1/feedback", params={"year": "2024"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["kommuner"]) == body["headline"]["kommuner"] == 357
    by = {k["kommune_nr"]: k for k in body["kommuner"]}
    assert not {"3001", "1507"} & set(by)
    assert by["3101"]["name"] == "Halden"
    assert by["1580"]["name"] == "Haram"
    page = await client.get("/feedback", params={"year": "2024"})
    assert page.status_code == 200
    assert "Kárášjohka - Karasjok" in page.text
    assert (await client.get("/api/v1/feedback/3101", params={"year": "2024"})).status_code == 200
    assert (await client.get("/api/v1/feedback/3001", params={"year": "2024"})).status_code == 404
