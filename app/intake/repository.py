"""All SQL of the intake: messages, the dedup claim, events, findings, receipts, the outbox."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.core.findings import Finding
from app.core.xmlparse import xml_safe
from app.models import Finding as FindingRow
from app.models import (
    Message,
    MessageDedup,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)
from app.statuses import ANSWERED, ReceiptKind

# Column widths of the keys the intake looks values up by (see app.models).
FROM_PARTY_WIDTH = 100
EBMS_MESSAGE_ID_WIDTH = 500
MSGHEAD_MSG_ID_WIDTH = 200


def fit(value: str, width: int) -> str:
    """`value` made to fit a column of `width` characters (width > 65) and still identify it:
    unchanged when it fits, else its start plus '~' and its SHA-256. Senders control these
    values (ebMS and MsgHead ids have no length limit); PostgreSQL refuses an overlong value."""
    if len(value) <= width:
        return value
    return value[: width - 65] + "~" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _exact(value: str | None, width: int) -> str | None:
    """A value for a narrow column that must hold it exactly (fid, GUID, kommunenr), or None
    when it is too long: such a value is invalid anyway and the finding's detail says so."""
    return value if value is not None and len(value) <= width else None


# What an event's detail may hold: JSON scalars and lists of ids (never message content).
EventValue = str | int | float | bool | None | Sequence[str] | Sequence[int]


def add_event(
    session: AsyncSession, message: Message, kind: str, at: datetime, **detail: EventValue
) -> None:
    session.add(MessageEvent(message_id=message.id, kind=kind, at=at, detail=detail))


async def claim_message_id(
    session: AsyncSession,
    from_party_id: str,
    ebms_message_id: str,
    message: Message,
    content_sha256: str,
) -> None:
    """Claim (sender, MessageId) for `message`; raises IntegrityError when already taken
    (on PostgreSQL it first waits for a concurrent claimer to commit or roll back)."""
    session.add(
        MessageDedup(
            from_party_id=fit(from_party_id, FROM_PARTY_WIDTH),
            ebms_message_id=fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH),
            message_id=message.id,
            content_sha256=content_sha256,
        )
    )
    await session.flush()


async def release_claim(
    session: AsyncSession, from_party_id: str, ebms_message_id: str, message_id: int
) -> None:
    """Give up `message_id`'s claim on (sender, MessageId), so a retry is processed afresh."""
    claim = await find_claim(session, from_party_id, ebms_message_id)
    if claim is not None and claim.message_id == message_id:
        await session.delete(claim)


def record_header(
    message: Message,
    *,
    ebms_message_id: str | None,
    cpa_id: str | None,
    from_her: str | None,
    conversation_id: str | None = None,
    ref_to_message_id: str | None = None,
    service: str | None = None,
    action: str | None = None,
    to_her: str | None = None,
) -> None:
    """The ebMS header's fields on the message row, made to fit their columns (senders
    control their length): the lookup keys by `fit`, the rest cut."""
    message.ebms_message_id = (
        fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH) if ebms_message_id else None
    )
    message.conversation_id = _cut(conversation_id, 500)
    message.ref_to_message_id = _cut(ref_to_message_id, 500)
    message.cpa_id = _cut(cpa_id, 200)
    message.service = _cut(service, 200)
    message.action = _cut(action, 200)
    # the same key the dedup claim uses, so a transient failure can find and release it
    message.from_party_id = fit(from_her, FROM_PARTY_WIDTH) if from_her else None
    message.to_party_id = _cut(to_her, 100)


def _cut(value: str | None, width: int) -> str | None:
    return value[:width] or None if value else None


async def find_claim(
    session: AsyncSession, from_party_id: str, ebms_message_id: str
) -> MessageDedup | None:
    key = (fit(from_party_id, FROM_PARTY_WIDTH), fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH))
    row: MessageDedup | None = await session.get(MessageDedup, key)
    return row


async def receipt_for(session: AsyncSession, message_id: int) -> Receipt | None:
    row: Receipt | None = await session.scalar(
        select(Receipt).where(Receipt.message_id == message_id).options(undefer(Receipt.body))
    )
    return row


async def known_message_id(
    session: AsyncSession, ebms_message_id: str, parties: Sequence[str]
) -> bool:
    """Is `ebms_message_id` a message we received from, or sent to, one of `parties`?"""
    received = await session.scalar(
        select(MessageDedup.message_id).where(
            MessageDedup.ebms_message_id == fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH),
            MessageDedup.from_party_id.in_([fit(p, FROM_PARTY_WIDTH) for p in parties]),
        )
    )
    if received is not None:
        return True
    sent = await session.scalar(
        select(Receipt.id).where(Receipt.reply_ebms_message_id == ebms_message_id)
    )
    return sent is not None


@dataclass(frozen=True, slots=True)
class EarlierUse:
    """An earlier message of the same sender with the same MsgHead MsgId."""

    message_id: int
    status: str
    msghead_sha256: str | None
    received_at: datetime


async def msghead_id_uses(
    session: AsyncSession, sender_party_id: int, msg_id: str, except_message: int
) -> list[EarlierUse]:
    """Earlier answered messages of this sender with this MsgId, oldest first."""
    rows = await session.execute(
        select(Message.id, Message.status, Message.msghead_sha256, Message.received_at)
        .where(
            Message.sender_party_id == sender_party_id,
            Message.msghead_msg_id == fit(msg_id, MSGHEAD_MSG_ID_WIDTH),
            Message.id != except_message,
            Message.status.in_(sorted(ANSWERED)),
        )
        .order_by(Message.id)
    )
    return [EarlierUse(i, st, h, at) for i, st, h, at in rows.all()]


async def stored_apprec(session: AsyncSession, message_id: int) -> Receipt | None:
    """The AppRec receipt of a message, with the AppRec XML as it was sent."""
    row: Receipt | None = await session.scalar(
        select(Receipt)
        .where(Receipt.message_id == message_id, Receipt.kind == ReceiptKind.APPREC)
        .options(undefer(Receipt.apprec_xml))
    )
    return row


async def add_findings(
    session: AsyncSession,
    message: Message,
    findings: Iterable[Finding],
    *,
    allowed_kommuner: Collection[str] | None = None,
) -> int:
    """Store findings, set-based (a message may carry one per notification: 100 000). A
    finding is filed under its municipality only when the sending party may report for it
    (`allowed_kommuner`), so no one else's error list can show it."""

    def kommune(f: Finding) -> str | None:
        value = (_exact(f.subject.kommune_nr, 4) if f.subject else None) or message.kommune_nr
        if allowed_kommuner is not None and value not in allowed_kommuner:
            return None
        return value

    rows = [
        {
            "message_id": message.id,
            "rule_id": f.rule.id,
            "layer": f.rule.layer.value,
            "severity": f.severity.value,
            "consequence": f.rule.consequence.value,
            "apprec_code": f.rule.apprec_code,
            # sender text may hold control characters; PostgreSQL text cannot hold NUL
            "location": xml_safe(f.location)[:500],
            "detail": xml_safe(f.detail),
            "notification_guid": _exact(f.subject.notification_guid, 36) if f.subject else None,
            "bruker_nr": _fit_optional(f.subject.bruker_nr, 100) if f.subject else None,
            "fid": _exact(f.subject.fid, 11) if f.subject else None,
            "kommune_nr": kommune(f),
            "lopenr": f.subject.lopenr if f.subject else None,
            "environment": message.environment,
            "received_at": message.received_at,
        }
        for f in findings
    ]
    # Core executemany in batches: the ORM's unit of work costs more than the inserts
    table = cast(Table, FindingRow.__table__)
    for start in range(0, len(rows), _FINDING_BATCH):
        await session.execute(insert(table), rows[start : start + _FINDING_BATCH])
    return len(rows)


_FINDING_BATCH = 1000


def _fit_optional(value: str | None, width: int) -> str | None:
    return fit(value, width) if value is not None else None


def add_receipt(
    session: AsyncSession,
    message: Message,
    *,
    kind: ReceiptKind,
    content_type: str,
    body: bytes,
    reply_ebms_message_id: str | None,
    apprec_xml: bytes | None,
    apprec_id: str | None,
    apprec_status: str | None,
    at: datetime,
) -> Receipt:
    receipt = Receipt(
        message_id=message.id,
        kind=kind,
        content_type=content_type,
        body=body,
        reply_ebms_message_id=reply_ebms_message_id,
        apprec_xml=apprec_xml,
        apprec_id=apprec_id,
        apprec_status=apprec_status,
        created_at=at,
    )
    session.add(receipt)
    return receipt


def queue_notification(
    session: AsyncSession, message: Message, recipient: str, subject: str, body: str, at: datetime
) -> None:
    session.add(
        NotificationOutbox(
            message_id=message.id,
            recipient=recipient,
            subject=subject,
            body=body,
            next_attempt_at=at,
            created_at=at,
        )
    )
