"""All SQL of the intake: messages, the dedup claim, events, findings, receipts, the outbox."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.core.findings import Finding
from app.models import Finding as FindingRow
from app.models import (
    Message,
    MessageDedup,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)


def add_event(
    session: AsyncSession, message: Message, kind: str, at: datetime, **detail: Any
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
            from_party_id=from_party_id,
            ebms_message_id=ebms_message_id,
            message_id=message.id,
            content_sha256=content_sha256,
        )
    )
    await session.flush()


async def find_claim(
    session: AsyncSession, from_party_id: str, ebms_message_id: str
) -> MessageDedup | None:
    row: MessageDedup | None = await session.get(MessageDedup, (from_party_id, ebms_message_id))
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
            MessageDedup.ebms_message_id == ebms_message_id,
            MessageDedup.from_party_id.in_(parties),
        )
    )
    if received is not None:
        return True
    sent = await session.scalar(
        select(Receipt.id).where(Receipt.reply_ebms_message_id == ebms_message_id)
    )
    return sent is not None


async def msghead_id_seen(
    session: AsyncSession, sender_party_id: int, msg_id: str, except_message: int
) -> bool:
    found = await session.scalar(
        select(Message.id)
        .where(
            Message.sender_party_id == sender_party_id,
            Message.msghead_msg_id == msg_id,
            Message.id != except_message,
            Message.status.in_(("OK", "AVVIST", "OK_FEIL_I_DELMELDING")),
        )
        .limit(1)
    )
    return found is not None


def add_findings(session: AsyncSession, message: Message, findings: Iterable[Finding]) -> int:
    rows = [
        FindingRow(
            message_id=message.id,
            rule_id=f.rule.id,
            layer=f.rule.layer.value,
            severity=f.severity.value,
            consequence=f.rule.consequence.value,
            apprec_code=f.rule.apprec_code,
            location=f.location[:500],
            detail=f.detail,
            notification_guid=f.subject.notification_guid if f.subject else None,
            bruker_nr=f.subject.bruker_nr if f.subject else None,
            fid=f.subject.fid if f.subject else None,
            kommune_nr=(f.subject.kommune_nr if f.subject else None) or message.kommune_nr,
        )
        for f in findings
    ]
    session.add_all(rows)
    return len(rows)


def add_receipt(
    session: AsyncSession,
    message: Message,
    *,
    kind: str,
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
