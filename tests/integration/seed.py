"""Rows as the intake stores them, written straight into the real database: for the read
side's tests (`add_message`) and the open feedback's (`add_register_message`, with the
register store and episodes). The intake's own tests prove how they get there; one test
goes through it end to end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository as tokens
from app.intake import totals as totals_writer
from app.models import (
    Finding,
    IplosBruker,
    IplosEvent,
    IplosNotification,
    Message,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)
from app.query import totals
from app.register.episodes import update_episodes
from app.register.models import Hendelse, Melding, Notifikasjon
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


STATUS_OF_APPREC = {"1": "OK", "3": "OK_FEIL_I_DELMELDING", "2": "AVVIST"}


async def _message_row(
    s: AsyncSession,
    *,
    received_at: datetime,
    completed_at: datetime,
    raw: bytes | None,
    ebms_id: str | None,
    environment: str,
    msg_id: str | None,
    kommune: str | None,
    count: int,
    status: str,
    sender: str | None = None,
    receiver: str | None = None,
) -> Message:
    """The message row both seeders start from (flushed: it has its id)."""
    m = Message(
        received_at=received_at,
        request_id="req",
        remote_addr="10.0.0.1" if sender is not None else None,
        content_type="multipart/related" if sender is not None else None,
        size_bytes=len(raw or b""),
        raw=raw,
        ebms_message_id=ebms_id,
        from_party_id=sender,
        to_party_id=receiver,
        environment=environment,
        msghead_msg_id=msg_id,
        msghead_type="KPR_IPL",
        kommune_nr=kommune,
        notification_count=count,
        status=status,
        completed_at=completed_at,
    )
    s.add(m)
    await s.flush()
    return m


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
        m = await _message_row(
            s,
            received_at=when,
            completed_at=when + timedelta(seconds=1),
            raw=raw,
            ebms_id=ebms_id,
            environment=environment,
            msg_id=msg_id,
            kommune=kommune,
            count=len(faults or []) + len(accepted or []),
            status=status,
            sender=sender,
            receiver=receiver,
        )
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


@dataclass
class User:
    """One notification of one person: per service type (each its own tjenesteID) a
    TjenesteStart on `start` (None: not sent), a MidlertidigStoppFra on `stop` and a
    TjenesteSlutt on `end` when given."""

    types: tuple[str, ...]  # tjenesteType of its events
    org_nr: bool = True
    start: date | None = date(2018, 10, 1)
    stop: date | None = None
    end: date | None = None
    type_id: str = "1"
    bydel: str | None = None
    bruker_nr: str | None = None  # None: a brukerNr of its own

    def events(self) -> list[tuple[str, date]]:
        return [
            (kind, day)
            for kind, day in (
                ("TjenesteStart", self.start),
                ("MidlertidigStoppFra", self.stop),
                ("TjenesteSlutt", self.end),
            )
            if day is not None
        ]


def fid_of(kommune: str, i: int) -> str:
    return f"{(int(kommune) * 1000 + i) % 10**11:011d}"


async def add_register_message(
    sessions: async_sessionmaker[AsyncSession],
    *,
    kommune: str,
    environment: str = "production",
    received_at: datetime = T0,
    apprec: str = "1",
    users: list[User] | None = None,
    dropped: int = 0,
    warned: int = 0,
    rule: str = "IPL-FID-INVALID",
    warn_rule: str = "IPL-TYPEID-KIND",
) -> int:
    """A message as the intake leaves it in the register store (the feedback's tests): its
    receipt, the accepted notifications with their events in the history and the register
    (melding, notifikasjon, hendelse, episodes), the brukerNr pairs, findings for `dropped`
    notifications and warnings on `warned`."""
    users = users or []
    async with sessions() as s:
        m = await _message_row(
            s,
            received_at=received_at,
            completed_at=received_at,
            raw=b"raw",
            ebms_id=f"EBMS-{uuid.uuid4()}",
            environment=environment,
            msg_id=f"MSG-{uuid.uuid4()}",
            kommune=kommune,
            count=len(users) + dropped,
            status=STATUS_OF_APPREC[apprec],
        )
        s.add(
            Receipt(
                message_id=m.id,
                kind="apprec",
                content_type="multipart/related",
                body=b"reply",
                apprec_status=apprec,
                created_at=received_at,
            )
        )
        melding = None
        if apprec != "2":  # the register keeps accepted messages only
            melding = Melding(
                message_id=m.id,
                environment=environment,
                kommune_nr=kommune,
                received_at=received_at,
                apprec_id=f"APPREC-{m.id}",
                apprec_status=apprec,
                versjon="56.0.0",
            )
            s.add(melding)
            await s.flush()
        for i, u in enumerate(users):
            bruker = u.bruker_nr or f"BR-{kommune}-{m.id}-{i}"
            fid = fid_of(kommune, m.id * 1000 + i)
            n = IplosNotification(
                message_id=m.id,
                environment=environment,
                kommune_nr=kommune,
                guid=str(uuid.uuid4()),
                status="N",
                lopenr=m.id * 1000 + i,
                forrige_guid="00000000-0000-0000-0000-000000000000",
                bruker_nr=bruker,
                content_sha256="0" * 64,
            )
            s.add(n)
            await s.flush()
            stored = None
            if melding is not None:
                stored = Notifikasjon(
                    melding_id=melding.id,
                    environment=environment,
                    kommune_nr=kommune,
                    position=i + 1,
                    status_notifikasjon="N",
                    notifikasjon_tid="2018-10-01T12:00:00",
                    notifikasjon_guid=n.guid,
                    notifikasjon_forrige_guid=n.forrige_guid,
                    notifikasjon_lope_nr=str(n.lopenr),
                    notifikasjon_guid_tolket=n.guid,
                    notifikasjon_lope_nr_tolket=n.lopenr,
                )
                s.add(stored)
                await s.flush()
            events = [(code, kind, day) for code in u.types for kind, day in u.events()]
            for pos, (code, kind, day) in enumerate(events):
                org_nr = "974760673" if u.org_nr else None
                tjeneste_id = f"T{i}-{code}"
                s.add(
                    IplosEvent(
                        notification_id=n.id,
                        position=pos,
                        kind=kind,
                        tjeneste_type=code,
                        tjeneste_id=tjeneste_id,
                        tjeneste_org_nr=org_nr,
                        hendelse_dato=day,
                    )
                )
                if stored is None:
                    continue
                hendelse_guid = str(uuid.uuid4())
                s.add(
                    Hendelse(
                        notifikasjon_id=stored.id,
                        environment=environment,
                        kommune_nr=kommune,
                        position=pos + 1,
                        hendelse_type=kind,
                        tjeneste_type=code,
                        hendelse_reg_tid="2018-10-01T12:00:00",
                        tjeneste_org_nr=org_nr,
                        hendelse_dato=day.isoformat(),
                        tjeneste_id=tjeneste_id,
                        hendelse_guid=hendelse_guid,
                        midlertidig_stopp_id="S1" if kind == "MidlertidigStoppFra" else None,
                        pasient_guid=str(uuid.uuid4()),
                        bruker_nr=bruker,
                        fid=PROTECTOR.seal(fid),
                        fid_hmac=PROTECTOR.digest(fid),
                        type_id=u.type_id,
                        bydel=u.bydel,
                        hendelse_dato_tolket=day,
                        hendelse_guid_tolket=hendelse_guid,
                        type_id_tolket=u.type_id if u.type_id in ("1", "2", "3", "9") else None,
                    )
                )
            if await s.get(IplosBruker, (environment, kommune, bruker)) is None:
                s.add(
                    IplosBruker(
                        environment=environment,
                        kommune_nr=kommune,
                        bruker_nr=bruker,
                        fid=PROTECTOR.seal(fid),
                        fid_hmac=PROTECTOR.digest(fid),
                    )
                )
        if melding is not None:
            await s.flush()
            await update_episodes(s, melding.id)
        for i in range(dropped + warned):
            failing = i < dropped
            s.add(
                Finding(
                    message_id=m.id,
                    rule_id=rule if failing else warn_rule,
                    layer="content",
                    severity="error" if failing else "warning",
                    consequence="drop_notification" if failing else "warn",
                    apprec_code="E31" if failing else None,
                    location="/Melding/Notifikasjon",
                    detail="feil",
                    notification_guid=str(uuid.uuid4()),
                    bruker_nr=f"BR-X-{kommune}-{m.id}-{i}",
                    fid=PROTECTOR.seal(fid_of(kommune, 900 + i)),
                    kommune_nr=kommune,
                )
            )
        await s.commit()
        return m.id


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
