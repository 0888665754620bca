"""Rows as the intake stores them, written straight into the real database, for the read
side's tests (the intake's own tests prove how they get there; one test here goes through
it end to end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository as tokens
from app.intake import totals as totals_writer
from app.models import (
    Finding,
    IplosNotification,
    Message,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)
from app.query import totals
from tests.protector import PROTECTOR

T0 = datetime(2018, 11, 20, 11, 0, tzinfo=UTC)
FID_OSLO = "01010112345"  # made up: shape only
FID_BERGEN = "02020254321"  # made up: shape only


@dataclass
class Fault:
    rule_id: str = "IPL-FID-INVALID"
    apprec_code: str | None = "E31"
    consequence: str = "drop_notification"
    guid: str | None = None
    bruker_nr: str | None = None
    fid: str | None = None
    kommune_nr: str | None = None


@dataclass
class Seeded:
    id: int
    faults: list[Fault] = field(default_factory=list)


async def add_message(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kommune: str | None = "0301",
    environment: str = "pilot",
    status: str = "OK",
    apprec_status: str | None = "1",
    received_at: datetime | None = None,
    msg_id: str | None = None,
    ebms_id: str | None = None,
    sender: str = "8000001",
    receiver: str = "131725",
    raw: bytes | None = b"--raw--",
    faults: list[Fault] | None = None,
    accepted: list[tuple[str, str, str | None]] | None = None,
    email_to: str | None = None,
) -> Seeded:
    """A message with its events, findings, receipt and, optionally, accepted notifications
    (guid, status, ref) and an outbox email."""
    when = received_at or T0
    async with sessions() as s:
        m = Message(
            received_at=when,
            request_id="req",
            remote_addr="10.0.0.1",
            content_type="multipart/related",
            size_bytes=len(raw or b""),
            raw=raw,
            ebms_message_id=ebms_id,
            from_party_id=sender,
            to_party_id=receiver,
            environment=environment,
            msghead_msg_id=msg_id,
            msghead_type="KPR_IPL",
            kommune_nr=kommune,
            notification_count=len(faults or []) + len(accepted or []),
            status=status,
            completed_at=when + timedelta(seconds=1),
        )
        s.add(m)
        await s.flush()
        s.add(MessageEvent(message_id=m.id, at=when, kind="received", detail={"bytes": 7}))
        s.add(MessageEvent(message_id=m.id, at=when, kind="receipt_built", detail={}))
        for f in faults or []:
            s.add(
                Finding(
                    message_id=m.id,
                    rule_id=f.rule_id,
                    layer="content",
                    severity="error",
                    consequence=f.consequence,
                    apprec_code=f.apprec_code,
                    location="/Melding/Notifikasjon[1]",
                    detail="fid har feil kontrollsiffer",
                    notification_guid=f.guid,
                    bruker_nr=f.bruker_nr,
                    fid=PROTECTOR.seal_optional(f.fid),
                    kommune_nr=f.kommune_nr if f.kommune_nr is not None else kommune,
                    environment=environment,
                    received_at=when,
                )
            )
        for n, (guid, st, ref) in enumerate(accepted or []):
            s.add(
                IplosNotification(
                    message_id=m.id,
                    environment=environment,
                    kommune_nr=kommune or "0000",
                    guid=guid,
                    status=st,
                    lopenr=n + 1,
                    forrige_guid="00000000-0000-0000-0000-000000000000",
                    ref=ref,
                    bruker_nr="B1",
                    content_sha256="0" * 64,
                )
            )
        if apprec_status is not None:
            s.add(
                Receipt(
                    message_id=m.id,
                    kind="apprec",
                    content_type="multipart/related",
                    body=b"reply",
                    apprec_xml=b"<AppRec>" + str(m.id).encode() + b"</AppRec>",
                    apprec_id=f"apprec-{m.id}",
                    apprec_status=apprec_status,
                    created_at=when,
                )
            )
        if email_to is not None:
            s.add(
                NotificationOutbox(
                    message_id=m.id,
                    recipient=email_to,
                    subject=f"KPR: IPLOS-melding mottatt, referanse {m.id}",
                    body="Hei",
                    status="sent",
                    attempts=1,
                    next_attempt_at=when,
                    created_at=when,
                    sent_at=when,
                    kind="message",
                    kommune_nr=kommune,
                )
            )
        await s.flush()
        # as the intake does in the same transaction: corrections and running totals
        await totals_writer.record_message(s, m.id, totals.windows_for(""))
        await s.commit()
        return Seeded(m.id, list(faults or []))


async def token(sessions: async_sessionmaker[AsyncSession], name: str, role: str) -> str:
    async with sessions() as s:
        _, plaintext = await tokens.create_token(s, name, role)
        await s.commit()
    return plaintext


async def revoked_token(sessions: async_sessionmaker[AsyncSession], name: str) -> str:
    plaintext = await token(sessions, name, "operator")
    async with sessions() as s:
        await tokens.revoke_token(s, name)
        await s.commit()
    return plaintext


def auth(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}
