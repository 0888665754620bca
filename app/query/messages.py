"""All SQL of the message queries: list with filters, detail, findings, AppRec, raw bytes,
and queueing a notification again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.models import Finding, Message, MessageEvent, NotificationOutbox, Receipt

# The consequences that make a finding an error in the receipt (not a warning).
ERROR_CONSEQUENCES = ("message_error", "reject_message", "drop_notification", "keep_with_error")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageFilter:
    kommune: str | None = None
    sender_her_id: int | None = None
    receiver_her_id: int | None = None
    environment: str | None = None
    status: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    msg_id: str | None = None
    rule: str | None = None
    apprec_code: str | None = None
    transport: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageSummary:
    id: int
    received_at: datetime
    status: str
    environment: str | None
    kommune_nr: str | None
    sender_her_id: str | None
    receiver_her_id: str | None
    ebms_message_id: str | None
    msghead_msg_id: str | None
    msghead_type: str | None
    notification_count: int | None
    apprec_status: str | None


_SUMMARY_COLUMNS = (
    Message.id,
    Message.received_at,
    Message.status,
    Message.environment,
    Message.kommune_nr,
    Message.from_party_id,
    Message.to_party_id,
    Message.ebms_message_id,
    Message.msghead_msg_id,
    Message.msghead_type,
    Message.notification_count,
    Receipt.apprec_status,
)


def _summary(row: tuple[object, ...]) -> MessageSummary:
    names = (
        "id",
        "received_at",
        "status",
        "environment",
        "kommune_nr",
        "sender_her_id",
        "receiver_her_id",
        "ebms_message_id",
        "msghead_msg_id",
        "msghead_type",
        "notification_count",
        "apprec_status",
    )
    return MessageSummary(**dict(zip(names, row, strict=True)))  # type: ignore[arg-type]


def _filtered(query: Select[*tuple[Any, ...]], where: MessageFilter) -> Select[*tuple[Any, ...]]:
    m = Message
    if where.kommune is not None:
        query = query.where(m.kommune_nr == where.kommune)
    if where.sender_her_id is not None:
        query = query.where(m.from_party_id == str(where.sender_her_id))
    if where.receiver_her_id is not None:
        query = query.where(m.to_party_id == str(where.receiver_her_id))
    if where.environment is not None:
        query = query.where(m.environment == where.environment)
    if where.status is not None:
        query = query.where(m.status == where.status)
    if where.transport is not None:
        query = query.where(m.transport == where.transport)
    if where.received_from is not None:
        query = query.where(m.received_at >= where.received_from)
    if where.received_to is not None:
        query = query.where(m.received_at < where.received_to)
    if where.msg_id is not None:
        query = query.where(
            or_(m.msghead_msg_id == where.msg_id, m.ebms_message_id == where.msg_id)
        )
    if where.rule is not None:
        query = query.where(
            exists().where(Finding.message_id == m.id, Finding.rule_id == where.rule)
        )
    if where.apprec_code is not None:
        query = query.where(
            exists().where(Finding.message_id == m.id, Finding.apprec_code == where.apprec_code)
        )
    return query


async def list_messages(
    session: AsyncSession,
    where: MessageFilter,
    *,
    only_kommune: str | None,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[MessageSummary]:
    """Newest first: by received time, then id (keyset `before` = the last row's pair), so a
    page boundary never moves when new messages arrive, and a time filter walks its index.
    `only_kommune` confines a municipality to its own messages."""
    query: Select[*tuple[Any, ...]] = (
        select(*_SUMMARY_COLUMNS)
        .outerjoin(Receipt, Receipt.message_id == Message.id)
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(limit)
    )
    query = _filtered(query, where)
    if only_kommune is not None:
        query = query.where(Message.kommune_nr == only_kommune)
    if before is not None:
        at, last_id = before
        query = query.where(
            or_(Message.received_at < at, and_(Message.received_at == at, Message.id < last_id))
        )
    return [_summary(tuple(r)) for r in (await session.execute(query)).all()]


async def summary_of(session: AsyncSession, message_id: int) -> MessageSummary | None:
    row = (
        await session.execute(
            select(*_SUMMARY_COLUMNS)
            .outerjoin(Receipt, Receipt.message_id == Message.id)
            .where(Message.id == message_id)
        )
    ).one_or_none()
    return None if row is None else _summary(tuple(row))


async def get_message(
    session: AsyncSession, message_id: int, *, only_kommune: str | None
) -> Message | None:
    """The message, or None when missing or not the municipality's own (the same answer)."""
    query = select(Message).where(Message.id == message_id)
    if only_kommune is not None:
        query = query.where(Message.kommune_nr == only_kommune)
    row: Message | None = await session.scalar(query)
    return row


async def message_events(session: AsyncSession, message_id: int) -> list[MessageEvent]:
    return list(
        await session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCount:
    rule_id: str
    severity: str
    apprec_code: str | None
    count: int


def _own_findings(message_id: int, only_kommune: str | None) -> list[object]:
    """A municipality sees its own findings and the message-level ones (no municipality)."""
    conditions: list[object] = [Finding.message_id == message_id]
    if only_kommune is not None:
        conditions.append(or_(Finding.kommune_nr.is_(None), Finding.kommune_nr == only_kommune))
    return conditions


async def finding_counts(
    session: AsyncSession, message_id: int, *, only_kommune: str | None
) -> list[RuleCount]:
    rows = await session.execute(
        select(Finding.rule_id, Finding.severity, Finding.apprec_code, func.count())
        .where(*_own_findings(message_id, only_kommune))  # type: ignore[arg-type]
        .group_by(Finding.rule_id, Finding.severity, Finding.apprec_code)
        .order_by(Finding.rule_id, Finding.severity)
    )
    return [
        RuleCount(rule_id=r, severity=s, apprec_code=c, count=int(n)) for r, s, c, n in rows.all()
    ]


async def list_findings(
    session: AsyncSession,
    message_id: int,
    *,
    only_kommune: str | None,
    after_id: int | None,
    limit: int,
) -> list[Finding]:
    query = (
        select(Finding)
        .where(*_own_findings(message_id, only_kommune))  # type: ignore[arg-type]
        .order_by(Finding.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(Finding.id > after_id)
    return list(await session.scalars(query))


async def receipt_of(session: AsyncSession, message_id: int, *, with_xml: bool) -> Receipt | None:
    query = select(Receipt).where(Receipt.message_id == message_id)
    if with_xml:
        query = query.options(undefer(Receipt.apprec_xml))
    row: Receipt | None = await session.scalar(query)
    return row


async def raw_bytes(session: AsyncSession, message_id: int) -> tuple[bytes | None, str | None]:
    """(raw, content type) as received; raw is None when the body was never kept."""
    row = (
        await session.execute(
            select(Message.raw, Message.content_type).where(Message.id == message_id)
        )
    ).one_or_none()
    return (None, None) if row is None else (row[0], row[1])


async def outbox_of(session: AsyncSession, message_id: int) -> list[NotificationOutbox]:
    return list(
        await session.scalars(
            select(NotificationOutbox)
            .where(NotificationOutbox.message_id == message_id)
            .order_by(NotificationOutbox.id)
        )
    )


async def requeue_notification(
    session: AsyncSession, message_id: int, now: datetime
) -> list[NotificationOutbox]:
    """Queue the message's email again: a new pending row per recipient of its latest email
    (same subject and text: they carry no personal data). Empty when none was ever queued."""
    earlier = await outbox_of(session, message_id)
    latest: dict[str, NotificationOutbox] = {}
    for row in earlier:
        if row.kind == "message":
            latest[row.recipient] = row
    queued = [
        NotificationOutbox(
            message_id=message_id,
            recipient=row.recipient,
            subject=row.subject,
            body=row.body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            kind="message",
            kommune_nr=row.kommune_nr,
        )
        for row in latest.values()
    ]
    session.add_all(queued)
    await session.flush()
    return queued
