"""Issue 20, hole 6: the AppRec names failing notifications by brukerNr. Reading it is
access-logged like any personal data; retention masks brukerNr and fid in the stored AppRec
text when it takes them out of the findings, and leaves the reply bytes sent as they were."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.build import build_receipt
from app.apprec.model import OriginalMsgRef, Party
from app.catalogue import rules_by_id
from app.core.findings import Finding as CheckFinding
from app.core.findings import Subject
from app.models import AccessLog, Finding, Receipt
from app.platform.settings import Settings
from app.retention.policy import apply_retention
from tests.integration.seed import FID_OSLO, Fault, add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]
BRUKER = "EPJ-77123"
GUID = "bdd640fb-0667-4ad1-9c80-317fa3b1799d"


def _apprec() -> bytes:
    finding = CheckFinding(
        rule=rules_by_id()["IPL-FID-INVALID"],
        location="/Melding/Notifikasjon[1]",
        detail=f"brukerNr {BRUKER} har feil fødselsnummer",
        subject=Subject(notification_guid=GUID, bruker_nr=BRUKER, fid=FID_OSLO),
    )
    return build_receipt(
        [finding],
        sender=Party(name="KPR", her_id="131725"),
        receiver=Party(name="Oslo", her_id="8000001"),
        original=OriginalMsgRef(
            msg_type="KPR_IPL", msg_type_dn="IPLOS", issue_date="2018-11-20T11:00:00", id="m1"
        ),
        now=datetime(2018, 11, 20, 11, tzinfo=UTC),
    )


async def _message(sessions: Sessions) -> int:
    m = await add_message(
        sessions,
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[Fault(guid=GUID, bruker_nr=BRUKER, fid=FID_OSLO)],
    )
    async with sessions() as s:
        await s.execute(
            update(Receipt).where(Receipt.message_id == m.id).values(apprec_xml=_apprec())
        )
        await s.commit()
    return m.id


async def test_every_apprec_read_is_access_logged(
    client: httpx.AsyncClient, sessions: Sessions
) -> None:
    message_id = await _message(sessions)
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    r = await client.get(f"/api/v1/messages/{message_id}/apprec", headers=oslo)
    assert r.status_code == 200
    assert BRUKER in r.text
    missing = await client.get("/api/v1/messages/999999/apprec", headers=oslo)
    assert missing.status_code == 404
    async with sessions() as s:
        rows = list(await s.scalars(select(AccessLog)))
    assert [(a.actor, a.action, a.message_id, a.kommune_nr) for a in rows] == [
        ("oslo", "messages.apprec", message_id, "0301")
    ]
    assert rows[0].resource == f"/api/v1/messages/{message_id}/apprec"


async def test_retention_masks_the_stored_apprec_and_keeps_the_reply_bytes(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    message_id = await _message(sessions)
    async with sessions() as s:
        before = await s.scalar(select(Receipt).where(Receipt.message_id == message_id))
        assert before is not None
        sent = await s.scalar(select(Receipt.body).where(Receipt.message_id == message_id))
    now = datetime.now(UTC)
    report = await apply_retention(sessions, settings, now)
    assert report.summary()["apprec_subjects"] == 1
    async with sessions() as s:
        receipt = await s.scalar(select(Receipt).where(Receipt.message_id == message_id))
        assert receipt is not None
        body = await s.scalar(select(Receipt.body).where(Receipt.message_id == message_id))
        xml = await s.scalar(select(Receipt.apprec_xml).where(Receipt.message_id == message_id))
        subjects = (await s.execute(select(Finding.bruker_nr, Finding.fid))).all()
        logged = list(
            await s.scalars(select(AccessLog.action).where(AccessLog.actor == "retention"))
        )
    assert xml is not None
    assert BRUKER.encode() not in xml
    assert FID_OSLO.encode() not in xml
    assert GUID.encode() in xml  # which notification it was stays readable
    assert body == sent  # the reply as sent: a resend still gets it byte for byte
    assert receipt.apprec_redacted_at is not None
    assert subjects == [(None, None)]
    assert "retention.apprec_subjects" in logged
    operator = auth(await token(sessions, "ops", "operator"))
    shown = await client.get(f"/api/v1/messages/{message_id}/apprec", headers=operator)
    assert BRUKER not in shown.text
    # once only: a second run finds nothing to mask
    again = await apply_retention(sessions, settings, now)
    assert again.summary()["apprec_subjects"] == 0
