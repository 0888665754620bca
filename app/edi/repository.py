"""All SQL of the EDI channel: what the intake stored for a mail, where the sender takes its
replies, and the outbox of reply mails (`edi_outbox`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message
from app.replies.models import EdiOutbox


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredOutcome:
    message_id: int
    status: str
    sender_party_id: int | None  # set once the sender was authenticated
    cpa_id: str | None
    service: str | None
    action: str | None


async def outcome_of(session: AsyncSession, request_id: str) -> StoredOutcome | None:
    """The message row the intake committed for `request_id`, if any."""
    m = Message
    row = (
        await session.execute(
            select(m.id, m.status, m.sender_party_id, m.cpa_id, m.service, m.action).where(
                m.request_id == request_id
            )
        )
    ).first()
    if row is None:
        return None
    return StoredOutcome(
        message_id=row[0],
        status=str(row[1]),
        sender_party_id=row[2],
        cpa_id=row[3],
        service=row[4],
        action=row[5],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReply:
    dedup_key: str
    message_id: int | None
    mail_from: str
    recipient: str | None  # None: nowhere to send it (kept as failed for the operator)
    content_type: str
    body: bytes


async def queue_reply(session: AsyncSession, reply: NewReply) -> bool:
    """Queue a reply mail; False when the key is queued already (a mail read twice)."""
    if await session.scalar(select(EdiOutbox.id).where(EdiOutbox.dedup_key == reply.dedup_key)):
        return False
    row = EdiOutbox(
        dedup_key=reply.dedup_key,
        message_id=reply.message_id,
        mail_from=reply.mail_from,
        recipient=reply.recipient,
        content_type=reply.content_type,
        body=reply.body,
        status="pending" if reply.recipient else "failed",
        last_error=None if reply.recipient else "the sender's CPA names no SMTP endpoint",
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another reader queued it meanwhile
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class DueReply:
    id: int
    message_id: int | None
    mail_from: str
    recipient: str
    attempts: int
    created_at: datetime


async def claim_due(
    session: AsyncSession, now: datetime, batch: int, lease: timedelta
) -> list[DueReply]:
    """Up to `batch` due replies, leased to this sender (`FOR UPDATE SKIP LOCKED`: other
    senders take other rows; a sender that dies leaves them due when the lease ends)."""
    o = EdiOutbox
    due = (o.status == "pending") & (o.next_attempt_at <= now)
    oldest = select(o.id).where(due).order_by(o.next_attempt_at, o.id).limit(batch)
    claimed = await session.execute(
        update(o)
        .where(o.id.in_(oldest.with_for_update(skip_locked=True).scalar_subquery()), due)
        .values(next_attempt_at=now + lease)
        .returning(o.id, o.message_id, o.mail_from, o.recipient, o.attempts, o.created_at)
        .execution_options(synchronize_session=False)
    )
    return [
        DueReply(
            id=r[0], message_id=r[1], mail_from=r[2], recipient=r[3], attempts=r[4], created_at=r[5]
        )
        for r in claimed.all()
        if r[3]
    ]


async def reply_body(session: AsyncSession, outbox_id: int) -> tuple[bytes, str]:
    row = (
        await session.execute(
            select(EdiOutbox.body, EdiOutbox.content_type).where(EdiOutbox.id == outbox_id)
        )
    ).one()
    return bytes(row[0]), str(row[1])


async def record_attempt(
    session: AsyncSession,
    outbox_id: int,
    *,
    now: datetime,
    attempts: int,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Sent (`error` None), pending again at `retry_at`, or failed for good (no `retry_at`)."""
    if error is None:
        values: dict[str, object] = {"status": "sent", "sent_at": now, "last_error": None}
    else:
        status = "pending" if retry_at is not None else "failed"
        values = {"status": status, "next_attempt_at": retry_at or now, "last_error": error}
    await session.execute(
        update(EdiOutbox)
        .where(EdiOutbox.id == outbox_id, EdiOutbox.status == "pending")
        .values(attempts=attempts, **values)
        .execution_options(synchronize_session=False)
    )
