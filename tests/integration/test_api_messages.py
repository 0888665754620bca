"""/api/v1/messages: filters, cursor pages, detail, findings, AppRec, raw bytes, notify again,
and the access log they write (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AccessLog, AppendOnlyError, Message, NotificationOutbox
from tests.integration.seed import (
    FID_OSLO,
    T0,
    Fault,
    add_message,
    auth,
    token,
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def operator(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "ops", "operator"))


@pytest.fixture
async def oslo(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "oslo", "municipality:0301"))


async def _ids(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str | int
) -> list[int]:
    r = await client.get("/api/v1/messages", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return [m["id"] for m in r.json()["items"]]


async def test_each_filter_selects_its_messages(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    a = await add_message(sessions, msg_id="MSG-A", ebms_id="EB-A")
    b = await add_message(
        sessions,
        kommune="4601",
        environment="production",
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        sender="8000002",
        receiver="122612",
        received_at=T0 + timedelta(days=2),
        faults=[Fault(guid="g-b", bruker_nr="B9", fid=FID_OSLO)],
    )
    c = await add_message(
        sessions,
        status="AVVIST",
        apprec_status="2",
        received_at=T0 + timedelta(days=5),
        faults=[Fault(rule_id="IPL-FID-MISSING", apprec_code="E30", consequence="reject_message")],
    )
    assert await _ids(client, operator) == [c.id, b.id, a.id]
    assert await _ids(client, operator, kommune="4601") == [b.id]
    assert await _ids(client, operator, sender_her_id=8000002) == [b.id]
    assert await _ids(client, operator, receiver_her_id=131725) == [c.id, a.id]
    assert await _ids(client, operator, environment="production") == [b.id]
    assert await _ids(client, operator, status="AVVIST") == [c.id]
    assert await _ids(client, operator, received_from=(T0 + timedelta(days=1)).isoformat()) == [
        c.id,
        b.id,
    ]
    assert await _ids(client, operator, received_to=(T0 + timedelta(days=3)).isoformat()) == [
        b.id,
        a.id,
    ]
    assert await _ids(client, operator, msg_id="MSG-A") == [a.id]
    assert await _ids(client, operator, msg_id="EB-A") == [a.id]
    assert await _ids(client, operator, rule="IPL-FID-INVALID") == [b.id]
    assert await _ids(client, operator, apprec_code="E30") == [c.id]
    assert await _ids(client, operator, apprec_code="E30", kommune="4601") == []


async def test_transport_filter(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    """Issue 24: every message carries its transport, ebXML over HTTP unless it came by AMQP."""
    http = await add_message(sessions)
    amqp = await add_message(sessions, received_at=T0 + timedelta(days=1))
    async with sessions() as s, s.begin():
        await s.execute(update(Message).where(Message.id == amqp.id).values(transport="amqp"))
    assert await _ids(client, operator, transport="amqp") == [amqp.id]
    assert await _ids(client, operator, transport="ebxml-http") == [http.id]
    assert await _ids(client, operator, transport="ebxml-smtp") == []
    r = await client.get("/api/v1/messages", headers=operator, params={"transport": "x400"})
    assert r.status_code == 422


async def test_pages_stay_correct_while_messages_arrive(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    first = [(await add_message(sessions)).id for _ in range(23)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/api/v1/messages", headers=operator, params=params)
        assert r.status_code == 200
        body = r.json()
        seen += [m["id"] for m in body["items"]]
        pages += 1
        await add_message(sessions)  # a new message arrives between pages
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == sorted(first, reverse=True)


async def test_a_bad_cursor_is_400(client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    r = await client.get("/api/v1/messages", headers=operator, params={"cursor": "nope!"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 400


async def test_municipality_sees_only_its_own_and_others_answer_404(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    own = await add_message(sessions, kommune="0301")
    other = await add_message(sessions, kommune="4601")
    assert await _ids(client, oslo) == [own.id]
    assert await _ids(client, oslo, kommune="4601") == []
    for suffix in ("", "/findings", "/apprec"):
        theirs = await client.get(f"/api/v1/messages/{other.id}{suffix}", headers=oslo)
        missing = await client.get(f"/api/v1/messages/999999{suffix}", headers=oslo)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["title"] == missing.json()["title"]
        assert (await client.get(f"/api/v1/messages/{own.id}{suffix}", headers=oslo)).is_success


async def test_detail_has_timeline_counts_receipt_and_emails(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    m = await add_message(
        sessions,
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[
            Fault(guid="g1", bruker_nr="B1", fid=FID_OSLO),
            Fault(guid="g2", bruker_nr="B2", fid=FID_OSLO),
        ],
        email_to="innsending@kommune.example",
    )
    r = await client.get(f"/api/v1/messages/{m.id}", headers=operator)
    assert r.status_code == 200
    body = r.json()
    assert [e["kind"] for e in body["timeline"]] == ["received", "receipt_built"]
    assert body["finding_counts"] == [
        {"rule_id": "IPL-FID-INVALID", "severity": "error", "apprec_code": "E31", "count": 2}
    ]
    assert body["receipt"]["apprec_status"] == "3"
    assert body["receipt"]["code_counts"] == {"E31": 2}
    assert body["notifications"][0]["status"] == "sent"
    assert body["notifications"][0]["attempts"] == 1
    assert FID_OSLO not in r.text
    assert "B1" not in r.text


async def test_findings_are_paged_and_their_reads_logged(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    m = await add_message(
        sessions, faults=[Fault(guid=f"g{i}", bruker_nr=f"B{i}", fid=FID_OSLO) for i in range(7)]
    )
    r1 = await client.get(f"/api/v1/messages/{m.id}/findings", headers=oslo, params={"limit": 4})
    assert len(r1.json()["items"]) == 4
    r2 = await client.get(
        f"/api/v1/messages/{m.id}/findings",
        headers=oslo,
        params={"limit": 4, "cursor": r1.json()["next_cursor"]},
    )
    assert r2.json()["next_cursor"] is None
    guids = [f["notification_guid"] for f in r1.json()["items"] + r2.json()["items"]]
    assert guids == [f"g{i}" for i in range(7)]
    async with sessions() as s:
        logged = list(await s.scalars(select(AccessLog).order_by(AccessLog.id)))
    assert [(a.actor, a.role, a.action, a.message_id) for a in logged] == [
        ("oslo", "municipality:0301", "messages.findings", m.id)
    ] * 2


async def test_municipality_never_sees_a_person_in_another_municipalitys_finding(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    m = await add_message(
        sessions,
        faults=[
            Fault(guid="mine", bruker_nr="B1", fid=FID_OSLO),
            Fault(guid="theirs", bruker_nr="B2", fid="09090912345", kommune_nr="4601"),
        ],
    )
    r = await client.get(f"/api/v1/messages/{m.id}/findings", headers=oslo)
    assert [f["notification_guid"] for f in r.json()["items"]] == ["mine"]
    assert "09090912345" not in r.text


async def test_apprec_is_the_xml_as_sent(
    client: httpx.AsyncClient, sessions: Sessions, oslo: dict[str, str]
) -> None:
    m = await add_message(sessions)
    r = await client.get(f"/api/v1/messages/{m.id}/apprec", headers=oslo)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/xml"
    assert r.content == f"<AppRec>{m.id}</AppRec>".encode()


async def test_raw_is_for_operators_and_every_read_is_logged(
    client: httpx.AsyncClient,
    sessions: Sessions,
    operator: dict[str, str],
    oslo: dict[str, str],
) -> None:
    m = await add_message(sessions, raw=b"exact bytes\x00\xff")
    assert (await client.get(f"/api/v1/messages/{m.id}/raw", headers=oslo)).status_code == 403
    for _ in range(2):
        r = await client.get(
            f"/api/v1/messages/{m.id}/raw", headers={**operator, "X-Request-ID": "x"}
        )
        assert r.status_code == 200
        assert r.content == b"exact bytes\x00\xff"
    log = await client.get("/api/v1/access-log", headers=operator, params={"message_id": m.id})
    items = log.json()["items"]
    assert [(i["actor"], i["action"], i["kommune_nr"]) for i in items] == [
        ("ops", "messages.raw", "0301")
    ] * 2
    assert items[0]["resource"] == f"/api/v1/messages/{m.id}/raw"
    assert items[0]["remote_addr"] is not None


async def test_notify_queues_the_email_again(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    m = await add_message(sessions, email_to="innsending@kommune.example")
    r = await client.post(f"/api/v1/messages/{m.id}/notify", headers=operator)
    assert r.status_code == 202
    assert [(n["status"], n["attempts"]) for n in r.json()] == [("pending", 0)]
    async with sessions() as s:
        rows = list(
            await s.scalars(select(NotificationOutbox).where(NotificationOutbox.message_id == m.id))
        )
    assert sorted(x.status for x in rows) == ["pending", "sent"]
    assert {x.recipient for x in rows} == {"innsending@kommune.example"}
    silent = await add_message(sessions)
    assert (
        await client.post(f"/api/v1/messages/{silent.id}/notify", headers=operator)
    ).status_code == 409


async def test_the_access_log_cannot_be_changed_or_deleted(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    m = await add_message(sessions)
    assert (await client.get(f"/api/v1/messages/{m.id}/raw", headers=operator)).is_success
    async with sessions() as s:
        row = (await s.scalars(select(AccessLog))).one()
        row.actor = "someone else"
        with pytest.raises(AppendOnlyError):
            await s.flush()
    async with sessions() as s:
        await s.delete((await s.scalars(select(AccessLog))).one())
        with pytest.raises(AppendOnlyError):
            await s.flush()
    for statement in (update(AccessLog).values(actor="x"), delete(AccessLog)):
        async with sessions() as s:
            with pytest.raises(AppendOnlyError):
                await s.execute(statement)
    async with sessions() as s:
        assert (await s.scalars(select(AccessLog.actor))).all() == ["ops"]


async def test_newest_first_is_by_received_time_across_pages(
    client: httpx.AsyncClient, sessions: Sessions, operator: dict[str, str]
) -> None:
    late = await add_message(sessions, received_at=T0 + timedelta(hours=5))
    early = await add_message(sessions, received_at=T0 + timedelta(hours=1))
    middle = [
        (await add_message(sessions, received_at=T0 + timedelta(hours=3))).id for _ in range(3)
    ]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/api/v1/messages", headers=operator, params=params)).json()
        seen += [m["id"] for m in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [late.id, *sorted(middle, reverse=True), early.id]
    to = (T0 + timedelta(hours=4)).isoformat()
    assert await _ids(client, operator, received_to=to, limit=2) == sorted(middle, reverse=True)[:2]
