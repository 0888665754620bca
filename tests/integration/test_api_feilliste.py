"""The municipality's error list: corrected or open across messages, per environment and
year, CSV for Excel, the fid switches, 404 for other municipalities, and the access log."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.models import AccessLog, Party, PartyKommune
from app.platform.settings import Settings
from tests.integration.seed import FID_BERGEN, FID_OSLO, Fault, add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]
URL = "/api/v1/kommuner/0301/feilliste"


@pytest.fixture
async def oslo(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "oslo", "municipality:0301"))


@pytest.fixture
async def operator(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "ops", "operator"))


async def _scenario(sessions: Sessions) -> dict[str, int]:
    """g1 fails then is resent and accepted; g2 fails and is corrected by an M row; g3 fails
    and stays open; g4 fails in production (another list); g5 is Bergen's."""
    first = await add_message(
        sessions,
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[
            Fault(guid="g1", bruker_nr="B1", fid=FID_OSLO),
            Fault(guid="g2", bruker_nr="=HYPERLINK(1)", fid=FID_OSLO, rule_id="IPL-TYPEID-CODE"),
            Fault(guid="g3", bruker_nr="B3", fid=FID_OSLO),
        ],
    )
    later = await add_message(sessions, accepted=[("g1", "N", None), ("m2", "M", "g2")])
    prod = await add_message(
        sessions,
        environment="production",
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[Fault(guid="g4", bruker_nr="B4", fid=FID_OSLO)],
    )
    bergen = await add_message(
        sessions, kommune="4601", faults=[Fault(guid="g5", bruker_nr="B5", fid=FID_BERGEN)]
    )
    return {"first": first.id, "later": later.id, "prod": prod.id, "bergen": bergen.id}


async def test_open_and_all_follow_later_accepted_notifications(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    ids = await _scenario(sessions)
    params: dict[str, str | int] = {"year": 2018, "environment": "pilot"}
    r = await client.get(URL, headers=oslo, params={**params, "filter": "all"})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [(x["notification_guid"], x["corrected"]) for x in rows] == [
        ("g1", True),
        ("g2", True),
        ("g3", False),
    ]
    assert {x["message_id"] for x in rows} == {ids["first"]}
    assert rows[0]["fid"] == FID_OSLO
    assert rows[0]["text"].startswith("Personidentifikasjonen (fid) er ikke et gyldig")
    r = await client.get(URL, headers=oslo, params=params)
    assert [x["notification_guid"] for x in r.json()["rows"]] == ["g3"]
    r = await client.get(URL, headers=oslo, params={**params, "environment": "production"})
    assert [x["notification_guid"] for x in r.json()["rows"]] == ["g4"]
    assert FID_BERGEN not in r.text
    r = await client.get(URL, headers=oslo, params={**params, "year": 2017})
    assert r.json()["rows"] == []


async def test_a_correction_before_the_failure_does_not_count(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    await add_message(sessions, accepted=[("g1", "N", None)])
    await add_message(sessions, faults=[Fault(guid="g1", bruker_nr="B1", fid=FID_OSLO)])
    r = await client.get(URL, headers=oslo, params={"year": 2018, "environment": "pilot"})
    assert [x["corrected"] for x in r.json()["rows"]] == [False]


async def test_the_default_environment_is_the_latest_message(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    await _scenario(sessions)
    r = await client.get(URL, headers=oslo, params={"year": 2018})
    assert r.json()["environment"] == "production"
    assert [x["notification_guid"] for x in r.json()["rows"]] == ["g4"]


async def test_csv_for_excel_parses_into_the_right_columns(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    ids = await _scenario(sessions)
    params = {"year": "2018", "environment": "pilot", "filter": "all"}
    by_param = await client.get(URL, headers=oslo, params={**params, "format": "csv"})
    by_accept = await client.get(URL, headers={**oslo, "Accept": "text/csv"}, params=params)
    for r in (by_param, by_accept):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(by_param.content.decode("utf-8-sig")), delimiter=";"))
    assert list(rows[0]) == [
        "Meldingsreferanse",
        "Mottatt",
        "NotifikasjonGUID",
        "Løpenummer",
        "BrukerNr",
        "Person-ID",
        "Regel",
        "Feilkode",
        "Feiltekst",
        "Detaljer",
        "Rettet",
    ]
    assert [(x["NotifikasjonGUID"], x["Rettet"]) for x in rows] == [
        ("g1", "Ja"),
        ("g2", "Ja"),
        ("g3", "Nei"),
    ]
    assert rows[0]["Meldingsreferanse"] == str(ids["first"])
    assert rows[0]["Mottatt"] == "20.11.2018 12:00:00"  # Oslo time
    assert rows[0]["Person-ID"] == FID_OSLO
    assert rows[1]["BrukerNr"] == "'=HYPERLINK(1)"  # never a formula in Excel
    assert rows[1]["Regel"] == "IPL-TYPEID-CODE"
    assert rows[1]["Feilkode"] == "E31"


async def test_another_municipality_gets_404_like_a_missing_list(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str], operator: dict[str, str]
) -> None:
    await _scenario(sessions)
    theirs = await client.get(
        "/api/v1/kommuner/4601/feilliste", headers=oslo, params={"year": 2018}
    )
    assert theirs.status_code == 404
    assert FID_BERGEN not in theirs.text
    ok = await client.get(
        "/api/v1/kommuner/4601/feilliste", headers=operator, params={"year": 2018}
    )
    assert ok.status_code == 200
    assert ok.json()["rows"][0]["fid"] == FID_BERGEN


async def test_every_read_is_access_logged(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    await _scenario(sessions)
    await client.get(URL, headers=oslo)
    await client.get(URL, headers=oslo, params={"format": "csv"})
    async with sessions() as s:
        rows = list(await s.scalars(select(AccessLog).order_by(AccessLog.id)))
    assert [(a.actor, a.role, a.action, a.kommune_nr, a.resource) for a in rows] == [
        ("oslo", "municipality:0301", "feilliste.read", "0301", URL)
    ] * 2


async def test_the_party_flag_hides_fid_for_one_municipality(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str], operator: dict[str, str]
) -> None:
    await _scenario(sessions)
    async with sessions() as s:
        party = Party(her_id=8000001, name="Oslo kommune")
        party.kommuner = [PartyKommune(kommune_nr="0301"), PartyKommune(kommune_nr="4601")]
        s.add(party)
        await s.commit()
    r = await client.patch(
        "/api/v1/parties/8000001", headers=operator, json={"hide_fid_kommuner": ["0301"]}
    )
    assert r.status_code == 200
    assert r.json()["hide_fid_kommuner"] == ["0301"]
    params = {"environment": "pilot", "year": "2018"}
    body = (await client.get(URL, headers=oslo, params=params)).json()
    assert body["fid_published"] is False
    assert body["rows"][0]["fid"] is None
    csv_text = (await client.get(URL, headers=oslo, params={**params, "format": "csv"})).text
    assert "Person-ID" not in csv_text
    assert FID_OSLO not in csv_text
    first = body["rows"][0]["message_id"]
    findings = await client.get(f"/api/v1/messages/{first}/findings", headers=oslo)
    assert findings.json()["items"]
    assert FID_OSLO not in findings.text
    bergen = await client.get("/api/v1/kommuner/4601/feilliste", headers=operator, params=params)
    assert bergen.json()["rows"][0]["fid"] == FID_BERGEN


@pytest.fixture
async def no_fid_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings.model_copy(update={"feilliste_publish_fid": False}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


async def test_the_setting_hides_fid_for_everyone(
    no_fid_client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    await _scenario(sessions)
    for url in (URL, "/api/v1/kommuner/4601/feilliste"):
        r = await no_fid_client.get(
            url, headers=operator, params={"environment": "pilot", "year": 2018}
        )
        assert r.json()["fid_published"] is False
        assert r.json()["rows"]
        assert all(x["fid"] is None for x in r.json()["rows"])
        assert FID_OSLO not in r.text
        assert FID_BERGEN not in r.text


async def test_the_default_year_is_the_one_being_reported(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    await add_message(
        sessions, received_at=now, faults=[Fault(guid="now", bruker_nr="B", fid=FID_OSLO)]
    )
    body = (await client.get(URL, headers=oslo)).json()
    assert body["year"] in (now.year, now.year - 1)
    assert [x["notification_guid"] for x in body["rows"]] == ["now"]


async def test_json_pages_through_the_list_while_messages_arrive(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    """Pages of two rows walk the whole list once, in order, while later messages add rows and
    correct one already shown; the CSV holds every row whatever the limit."""
    faults = [Fault(guid=f"p{i}", bruker_nr="B1", fid=FID_OSLO) for i in range(5)]
    await add_message(sessions, faults=faults[:3])
    await add_message(sessions, faults=faults[3:])
    params: dict[str, str | int] = {"year": 2018, "environment": "pilot", "limit": 2}
    seen: list[str] = []
    cursor: str | None = None
    for turn in range(10):
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(URL, headers=oslo, params=page_params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["rows"]) <= 2
        seen += [x["notification_guid"] for x in body["rows"]]
        if turn == 0:  # a new failure arrives, and p0 (already shown) is corrected
            await add_message(sessions, faults=[Fault(guid="p5", bruker_nr="B1", fid=FID_OSLO)])
            await add_message(sessions, accepted=[("p0", "N", None)])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["p0", "p1", "p2", "p3", "p4", "p5"]
    r = await client.get(URL, headers=oslo, params={**params, "format": "csv"})
    assert r.content.decode("utf-8-sig").count("\r\n") == 1 + 5  # header + the open rows
    bad = await client.get(URL, headers=oslo, params={**params, "cursor": "not-ours"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
