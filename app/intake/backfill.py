"""Rebuilding the register store for messages stored before it existed, or whose register
rows are missing (`kpr-mottak register backfill`, issue 19 item 7).

A message the intake accepted (AppRec 1 or 3) without a `melding` row is read again from its
stored request, as the intake read it: MIME and ebXML envelope, the payload decrypted with the
keyring's decryption keys (every one configured, so keys rolled over since still open it),
MsgHead, then the content check. The signatures and certificates are not judged again: the
message was authenticated when it was received, and today's date, CRLs or registry would
judge a different question. Of the notifications the content yields, exactly those the intake
accepted are stored: the history (`iplos_notification`) records which notifications each
message added; the rest were dropped or identical resends of stored ones.

What a notification's findings were (`notifikasjon.funn`) depends on the history the message
was checked against then, which cannot be rebuilt; the message's stored findings say it, so
the rules are taken from them (by the row's place, `/Melding/Notifikasjon[i]`).

Three parts: the pure reading (`read_request`, `accepted_content`, `rules_by_row`), the SQL
(`pending` and the reads and write below it), and `recover`, which does one message in one
committed transaction: `store_melding`, `update_episodes`, `assign_feed_seq`, as the intake
does. Nothing here logs a fid or any content: results name message ids, counts and rule ids.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import IO

import anyio
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.content.iplos.rules import RULES as IPLOS_RULES
from app.content.model import ContentContext, ContentResult, IplosHistory
from app.core.findings import Consequence, Finding
from app.ebxml.checks import resolve_cid
from app.ebxml.envelope import EbmsHeader
from app.ebxml.mime import Attachment, MimeMessage
from app.intake import history, stages
from app.models import Finding as FindingRow
from app.models import IplosNotification, Message, MessageEvent, Party, Receipt
from app.platform.settings import ReceiverEnvironment, Settings
from app.register.episodes import update_episodes
from app.register.models import Melding
from app.register.protect import Protector
from app.register.store import MeldingRecord, assign_feed_seq, store_melding
from app.security import cms
from app.security import rules as sec_rules
from app.security.keys import KeyPair
from app.statuses import MessageStatus, ReceiptKind

# The statuses of an accepted message: AppRec 1 and 3.
ACCEPTED = (MessageStatus.OK.value, MessageStatus.OK_FEIL_I_DELMELDING.value)


class Recovery(StrEnum):
    """What became of one message."""

    REBUILT = "rebuilt"
    PARTIAL = "partial"  # stored, but some accepted notifications are not in the content
    RAW_REMOVED = "raw removed"
    HISTORY_REMOVED = "history removed"
    UNDECRYPTABLE = "undecryptable"
    UNREADABLE = "unreadable"
    ALREADY_STORED = "already stored"  # another run or process stored it meanwhile

    @property
    def recovered(self) -> bool:
        return self in (Recovery.REBUILT, Recovery.ALREADY_STORED)


# --- the pure reading: the stored request read as the intake read it --------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Reader:
    """What reading a stored request takes besides its bytes: the keyring's decryption keys,
    our HER-ids and the intake's caps (from the settings)."""

    keys: Sequence[KeyPair]
    our_her_ids: frozenset[str]
    max_parts: int
    max_header_bytes: int
    max_inflated: int
    skew: timedelta

    @classmethod
    def of(cls, settings: Settings, keys: Sequence[KeyPair]) -> Reader:
        return cls(
            keys=tuple(keys),
            our_her_ids=frozenset(str(h) for h in settings.receivers),
            max_parts=settings.max_mime_parts,
            max_header_bytes=settings.max_header_bytes,
            max_inflated=settings.max_payload_bytes,
            skew=timedelta(seconds=settings.gen_date_skew_seconds),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """The message row's facts that reading its request needs."""

    content_type: str | None
    received_at: datetime
    environment: str
    from_her: str | None  # eb:From, as the message row keeps it
    to_her: str | None  # eb:To: the address it was sent to
    party_her: str | None  # the registered sender's HER-id


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """The content as read, or why it could not be (`recovery`, `detail`: rule ids and our
    own words only, never the sender's text)."""

    content: ContentResult | None = None
    recovery: Recovery | None = None
    detail: str = ""


def read_request(body: bytes, request: Request, reader: Reader) -> Reading:
    """The content of a stored request, read with the intake's stages as of its receipt."""
    # the receiver it was sent to is ours by definition: it was accepted there
    receivers = {request.to_her: request.environment} if request.to_her else {}
    transport = stages.read_transport(
        body,
        request.content_type,
        receivers=receivers,
        now=request.received_at,
        max_parts=reader.max_parts,
        max_header_bytes=reader.max_header_bytes,
    )
    if transport.mime is None or transport.header is None:
        return _unreadable("the MIME message or ebXML envelope", transport.findings)
    part = _payload(transport.mime, transport.header)
    if part is None:
        return Reading(
            recovery=Recovery.UNREADABLE, detail="no payload part named by the eb:Manifest"
        )
    opened = _unpack(part, reader)
    if isinstance(opened, Reading):
        return opened
    try:
        return _read_business(opened, request, reader)
    finally:
        opened.close()


def _payload(mime: MimeMessage, header: EbmsHeader) -> Attachment | None:
    """The part the Manifest's first cid: names. The intake took the first one the envelope
    signature covered; an accepted message had every part covered (SEC-SIG-PAYLOAD-UNSIGNED
    refuses one that is not), so this is the part it decrypted."""
    for ref in header.manifest:
        cid = resolve_cid(ref.href)
        att = mime.attachment(cid) if cid else None
        if att is not None:
            return att
    return None


_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime", "application/octet-stream")


def _unpack(part: Attachment, reader: Reader) -> IO[bytes] | Reading:
    """The payload decrypted (or, from a party that may send plaintext, inflated) into a
    spool the caller closes; DER always starts with a SEQUENCE tag, as the intake judged."""
    if part.media_type in _PKCS7 or part.data[:1] == b"\x30":
        opened = cms.open_payload_spooled(part.data, reader.keys, max_inflated=reader.max_inflated)
        if opened.content is not None:
            return opened.content
        if any(f.rule.id == sec_rules.CMS_NO_RECIPIENT.id for f in opened.findings):
            return Reading(
                recovery=Recovery.UNDECRYPTABLE,
                detail="does not decrypt with today's keys: none of the keyring's "
                "decryption certificates is a recipient",
            )
        return _unreadable("the decrypted payload", opened.findings)
    inflated = cms.inflate(part.data, reader.max_inflated)
    if inflated.content is None:
        return _unreadable("the payload", inflated.findings)
    spool = cms.new_spool()
    spool.write(inflated.content)
    spool.seek(0)
    return spool


def _read_business(content: IO[bytes], request: Request, reader: Reader) -> Reading:
    """MsgHead and the content, judged as of the receipt: the same `now`, addresses and
    sender. The content is checked against an empty history: which notifications were
    accepted and what their findings were come from what the intake stored."""
    expect = stages.HeadExpectations(
        now=request.received_at,
        ebxml_from_her=request.from_her,
        ebxml_to_her=request.to_her,
        party_her=request.party_her or request.from_her,
        our_her_ids=reader.our_her_ids | ({request.to_her} if request.to_her else set()),
        skew=reader.skew,
    )
    read = stages.read_business(content, expect)
    if read.fmt is None:
        return _unreadable("MsgHead", read.findings)
    context = ContentContext(
        now=request.received_at,
        allow_synthetic=request.environment != ReceiverEnvironment.PRODUCTION.value,
        history=IplosHistory(),
        environment=request.environment,
    )
    business = stages.check_content(read, context)
    result = business.content
    if result is None or result.rejected:
        return _unreadable("the content", result.findings if result else business.findings)
    return Reading(content=result)


def _unreadable(what: str, findings: Iterable[Finding]) -> Reading:
    failing = sorted(
        {
            f.rule.id
            for f in findings
            if f.rule.consequence in (Consequence.REJECT_MESSAGE, Consequence.MESSAGE_ERROR)
        }
    )
    why = f" ({', '.join(failing)})" if failing else ""
    return Reading(recovery=Recovery.UNREADABLE, detail=f"{what} cannot be read{why}")


_ROW = re.compile(r"/Melding/Notifikasjon\[(\d+)\](?:/|$)")


def rules_by_row(findings: Iterable[tuple[str, str]]) -> dict[int, tuple[str, ...]]:
    """The rule ids of each notification's findings, by its position, from the message's
    stored (rule id, location) pairs in the order they were stored: what `Notification.rules`
    held when the intake stored it. A row's findings are located inside it; the message's
    own (the løpenummer gap, the calendar) are not."""
    out: dict[int, dict[str, None]] = {}
    for rule_id, location in findings:
        m = _ROW.match(location)
        if m is not None:
            out.setdefault(int(m.group(1)), {})[rule_id] = None
    return {index: tuple(rules) for index, rules in out.items()}


# the rules whose findings leave a row stored with an error (issue 21): `notifikasjon.feil`
_KEPT_WITH_ERROR = frozenset(
    r.id for r in IPLOS_RULES if r.consequence is Consequence.KEEP_WITH_ERROR
)


def accepted_content(
    content: ContentResult, accepted: Collection[str], rules: Mapping[int, tuple[str, ...]]
) -> tuple[ContentResult, frozenset[str]]:
    """The content with only the notifications the intake accepted (`accepted`: their
    normalised GUIDs), each with the rules its findings had then; and the accepted GUIDs the
    content does not yield. Only a GUID's first row can have been accepted (a later one is
    dropped as IPL-GUID-UNIQUE)."""
    wanted = set(accepted)
    kept = []
    for n in content.notifications:
        if n.guid in wanted and n.raw is not None:
            wanted.discard(n.guid)
            # accepted then, whatever today's rules or an empty history say of it
            found = rules.get(n.index, ())
            kept.append(
                replace(
                    n,
                    dropped=False,
                    already_stored=False,
                    rules=found,
                    errors=tuple(r for r in found if r in _KEPT_WITH_ERROR),
                )
            )
    return replace(content, notifications=tuple(kept)), frozenset(wanted)


# --- the SQL ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An accepted message without register rows."""

    message_id: int
    received_at: datetime
    environment: str
    has_raw: bool
    raw_note: str | None  # why the body is gone (retention writes its date and setting)
    request: Request


async def pending(session: AsyncSession, environment: str | None = None) -> list[Pending]:
    """Accepted messages without a `melding` row, in received order."""
    has_raw = Message.raw.is_not(None).label("has_raw")
    query = (
        select(
            Message.id,
            Message.received_at,
            Message.environment,
            Message.content_type,
            Message.from_party_id,
            Message.to_party_id,
            Message.raw_ref,
            Party.her_id,
            has_raw,
        )
        .outerjoin(Party, Party.id == Message.sender_party_id)
        .where(
            Message.status.in_(ACCEPTED),
            ~exists().where(Melding.message_id == Message.id),
        )
        .order_by(Message.received_at, Message.id)
    )
    if environment is not None:
        query = query.where(Message.environment == environment)
    out = []
    for mid, at, env, ctype, from_her, to_her, note, party_her, raw in await session.execute(query):
        # an accepted message always had a receiver; without one the intake judged it "pilot"
        where = env or ReceiverEnvironment.PILOT.value
        out.append(
            Pending(
                message_id=mid,
                received_at=at,
                environment=where,
                has_raw=bool(raw),
                raw_note=note,
                request=Request(
                    content_type=ctype,
                    received_at=at,
                    environment=where,
                    from_her=from_her,
                    to_her=to_her,
                    party_her=str(party_her) if party_her is not None else None,
                ),
            )
        )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """What the intake stored of one message that the register rows are rebuilt from."""

    raw: bytes | None
    accepted: tuple[str, ...]  # normalised GUIDs of the notifications it added
    added: int | None  # how many it added, by its `history_stored` event (None: no event)
    findings: tuple[tuple[str, str], ...]  # (rule id, location), in stored order
    apprec_id: str | None
    apprec_status: str | None


async def stored_facts(session: AsyncSession, message_id: int) -> Stored:
    raw = await session.scalar(select(Message.raw).where(Message.id == message_id))
    guids = await session.scalars(
        select(IplosNotification.guid)
        .where(IplosNotification.message_id == message_id)
        .order_by(IplosNotification.id)
    )
    event = await session.scalar(
        select(MessageEvent.detail).where(
            MessageEvent.message_id == message_id, MessageEvent.kind == "history_stored"
        )
    )
    added = event.get("notifications") if isinstance(event, dict) else None
    findings = await session.execute(
        select(FindingRow.rule_id, FindingRow.location)
        .where(FindingRow.message_id == message_id)
        .order_by(FindingRow.id)
    )
    receipt = (
        await session.execute(
            select(Receipt.apprec_id, Receipt.apprec_status).where(
                Receipt.message_id == message_id, Receipt.kind == ReceiptKind.APPREC.value
            )
        )
    ).first()
    return Stored(
        raw=raw,
        accepted=tuple(guids),
        added=added if isinstance(added, int) else None,
        findings=tuple((r, loc) for r, loc in findings.all()),
        apprec_id=receipt[0] if receipt else None,
        apprec_status=receipt[1] if receipt else None,
    )


async def _has_melding(session: AsyncSession, message_id: int) -> bool:
    found = await session.scalar(select(Melding.id).where(Melding.message_id == message_id))
    return found is not None


# --- one message, one transaction -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    reader: Reader
    protector: Protector
    dry_run: bool = False
    # SQLite's writer lock shared with a running service (app/platform/sqlite_writer.py); None: none
    writer: contextlib.AbstractAsyncContextManager[object] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    message_id: int
    received_at: datetime
    environment: str
    recovery: Recovery
    notifications: int = 0  # stored (with --dry-run: would be)
    detail: str = ""  # what could not be recovered, and why


async def recover(sessions: async_sessionmaker[AsyncSession], message: Pending, job: Job) -> Result:
    """Rebuild one message's register rows from its stored request, committed; with
    `job.dry_run` read and judged only."""

    def result(recovery: Recovery, notifications: int = 0, detail: str = "") -> Result:
        return Result(
            message_id=message.message_id,
            received_at=message.received_at,
            environment=message.environment,
            recovery=recovery,
            notifications=notifications,
            detail=detail,
        )

    if not message.has_raw:
        return result(Recovery.RAW_REMOVED, detail=_raw_gone(message.raw_note))
    async with sessions() as session:
        stored = await stored_facts(session, message.message_id)
    if stored.raw is None:  # removed since the list was read
        return result(Recovery.RAW_REMOVED, detail=_raw_gone(None))
    if stored.added is not None and len(stored.accepted) < stored.added:
        return result(
            Recovery.HISTORY_REMOVED,
            detail=f"which notifications it added is no longer known: the history holds "
            f"{len(stored.accepted)} of {stored.added} (removed by retention)",
        )
    raw = stored.raw
    reading = await anyio.to_thread.run_sync(lambda: read_request(raw, message.request, job.reader))
    if reading.content is None:
        return result(reading.recovery or Recovery.UNREADABLE, detail=reading.detail)
    content, missing = accepted_content(
        reading.content, stored.accepted, rules_by_row(stored.findings)
    )
    found = len(content.notifications)
    outcome, detail = Recovery.REBUILT, ""
    if missing:
        detail = (
            f"{len(missing)} of {len(stored.accepted)} accepted notifications not found "
            "in the content"
        )
        if not found:  # a melding without them would read as a message that had none
            return result(Recovery.UNREADABLE, detail=detail)
        outcome = Recovery.PARTIAL  # the rest stored: the register gets what there is
    if job.dry_run:
        return result(outcome, found, detail)
    record = MeldingRecord(
        message_id=message.message_id,
        environment=message.environment,
        received_at=message.received_at,
        apprec_id=stored.apprec_id,
        apprec_status=stored.apprec_status,
        content=content,
    )
    if not await _store(sessions, record, job):
        return result(Recovery.ALREADY_STORED)
    return result(outcome, found, detail)


def _raw_gone(note: str | None) -> str:
    # retention's note is our own text: its date and the setting, nothing the sender wrote
    return note or "the request's body is not stored"


async def _store(
    sessions: async_sessionmaker[AsyncSession], record: MeldingRecord, job: Job
) -> bool:
    """The register rows of one message, as `store_outcome` writes them, in one committed
    transaction; False when a melding row is there already."""
    content = record.content
    unit = content.kommuner[0][:4] if content.kommuner else ""
    async with job.writer or contextlib.nullcontext(), sessions() as session:
        # The municipality's history row locked as the intake's write transaction locks it:
        # an intake message of the same municipality recomputing the same episodes waits
        # for this one (or this for it), so neither recomputes without the other's rows.
        await history.read_versions(session, record.environment, [unit], lock=True)
        if await _has_melding(session, record.message_id):
            await session.rollback()
            return False
        stored = await store_melding(session, record, job.protector)
        await update_episodes(session, stored.id, stored.own)
        await assign_feed_seq(session, record.environment, stored.id)  # last: see its doc
        await session.commit()
    return True
