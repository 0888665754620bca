"""All SQL of the notification outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import NotificationOutbox


async def pending_notifications(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(NotificationOutbox)
        .where(NotificationOutbox.status == "pending")
    )
    return int(count or 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedEmail:
    """An outbox row claimed for sending (leased until the claim's `next_attempt_at`)."""

    id: int
    message_id: int | None  # None for a reminder
    recipient: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


async def claim_due(
    session: AsyncSession, now: datetime, batch: int, lease: timedelta
) -> list[ClaimedEmail]:
    """Claim up to `batch` due rows in one statement: their next attempt is pushed past the
    lease, so another sender (`FOR UPDATE SKIP LOCKED` on PostgreSQL) takes other rows, and a
    sender that dies leaves them due again when the lease ends."""
    o = NotificationOutbox
    due = (o.status == "pending") & (o.next_attempt_at <= now)
    ids = (
        select(o.id)
        .where(due)
        .order_by(o.next_attempt_at, o.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(o)
        .where(o.id.in_(ids.scalar_subquery()), due)
        .values(next_attempt_at=now + lease)
        .returning(o.id, o.message_id, o.recipient, o.subject, o.body, o.attempts, o.created_at)
        .execution_options(synchronize_session=False)
    )
    return [
        ClaimedEmail(
            id=i,
            message_id=m,
            recipient=r,
            subject=s,
            body=b,
            attempts=a,
            created_at=c,
        )
        for i, m, r, s, b, a, c in result.all()
    ]


async def mark_sent(session: AsyncSession, outbox_id: int, now: datetime) -> None:
    o = NotificationOutbox
    await session.execute(
        update(o)
        .where(o.id == outbox_id)
        .values(status="sent", sent_at=now, attempts=o.attempts + 1, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def mark_failed(
    session: AsyncSession,
    outbox_id: int,
    *,
    attempts: int,
    gave_up: bool,
    next_attempt_at: datetime,
    last_error: str,
) -> None:
    """Count a failed try: pending again at `next_attempt_at`, or `failed` for good."""
    o = NotificationOutbox
    await session.execute(
        update(o)
        .where(o.id == outbox_id, o.status == "pending")
        .values(
            status="failed" if gave_up else "pending",
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error,
        )
        .execution_options(synchronize_session=False)
    )
