"""All SQL of the reply outbox (table `reply_outbox`) and of what the binding reads to
decide a reply's way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Message,
    MessageDedup,
    MessageEvent,
    Party,
    PartyCpa,
    Receipt,
    RegistryEntry,
)
from app.parties.channels import ReplyChannels
from app.replies.decide import Route
from app.replies.models import ReplyOutbox

WAITING = ("pending", "slow")
HTTP_TRANSPORT = "ebxml-http"  # `message.transport` of a request to POST /ebms


async def message_by_request(session: AsyncSession, request_id: str) -> Message | None:
    """The row the intake stored for this HTTP request (its request id is ours, generated per
    request; `ix_message_request_id`)."""
    found: Message | None = await session.scalar(
        select(Message)
        .where(Message.request_id == request_id, Message.transport == HTTP_TRANSPORT)
        .order_by(Message.id.desc())
        .limit(1)
    )
    return found


async def channels_of(
    session: AsyncSession, party_id: int, cpa_id: str | None
) -> ReplyChannels | None:
    """The reply channels of the party's CPA that the (signed) CPAId names; for a party with
    no CPA at all, those of the profile (CPP) NHN's registry gave for it."""
    cpas = (
        await session.execute(
            select(PartyCpa.cpa_id, PartyCpa.reply_channels).where(PartyCpa.party_id == party_id)
        )
    ).all()
    if cpas:
        return next((ReplyChannels.from_json(c) for i, c in cpas if i == cpa_id), None)
    profile = await session.scalar(
        select(RegistryEntry.data)
        .join(Party, Party.her_id == RegistryEntry.her_id)
        .where(Party.id == party_id, RegistryEntry.known.is_(True))
    )
    return ReplyChannels.from_json((profile or {}).get("profile_reply_channels"))


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReply:
    message_id: int  # the message whose receipt it is
    reply_ebms_message_id: str | None


async def stored_reply(session: AsyncSession, message: Message) -> StoredReply | None:
    """The reply this request was answered with: its own receipt, or for a duplicate of an
    earlier message (same sender and MessageId) that message's, byte for byte."""
    own = await session.scalar(
        select(Receipt.reply_ebms_message_id).where(Receipt.message_id == message.id)
    )
    if own is not None or await _has_receipt(session, message.id):
        return StoredReply(message_id=message.id, reply_ebms_message_id=own)
    if not (message.from_party_id and message.ebms_message_id):
        return None
    original = await session.scalar(
        select(MessageDedup.message_id).where(
            MessageDedup.from_party_id == message.from_party_id,
            MessageDedup.ebms_message_id == message.ebms_message_id,
        )
    )
    if original is None or not await _has_receipt(session, original):
        return None
    ref = await session.scalar(
        select(Receipt.reply_ebms_message_id).where(Receipt.message_id == original)
    )
    return StoredReply(message_id=original, reply_ebms_message_id=ref)


async def _has_receipt(session: AsyncSession, message_id: int) -> bool:
    found = await session.scalar(select(Receipt.id).where(Receipt.message_id == message_id))
    return found is not None


async def queue_reply(
    session: AsyncSession,
    stored: StoredReply,
    route: Route,
    *,
    party_id: int | None,
    now: datetime,
) -> tuple[int, bool]:
    """The stored reply into the outbox, due now: a new row, or the message's row put back in
    the queue (a duplicate request, another try of the same bytes). Returns (row id, new)."""
    existing = await session.scalar(
        select(ReplyOutbox.id).where(ReplyOutbox.message_id == stored.message_id)
    )
    if existing is None:
        row = ReplyOutbox(
            message_id=stored.message_id,
            party_id=party_id,
            channel=route.channel,
            endpoint=route.endpoint,
            reply_ebms_message_id=stored.reply_ebms_message_id,
            status="pending",
            attempts=0,
            failures=0,
            retries=route.retries,
            retry_interval_seconds=route.retry_interval_seconds,
            next_attempt_at=now,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row.id, True
        except IntegrityError:  # queued by a copy of this request meanwhile
            existing = await session.scalar(
                select(ReplyOutbox.id).where(ReplyOutbox.message_id == stored.message_id)
            )
            assert existing is not None
    await requeue(session, existing, now=now, route=route)
    return existing, False


async def requeue(
    session: AsyncSession, reply_id: int, *, now: datetime, route: Route | None = None
) -> None:
    """Due now with a fresh round of the CPA's retries (delivered or not: the sender or an
    operator says it was not received)."""
    values: dict[str, object] = {"status": "pending", "failures": 0, "next_attempt_at": now}
    if route is not None:  # the CPA as registered now
        values.update(
            channel=route.channel,
            endpoint=route.endpoint,
            retries=route.retries,
            retry_interval_seconds=route.retry_interval_seconds,
        )
    await session.execute(
        update(ReplyOutbox)
        .where(ReplyOutbox.id == reply_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def add_event(
    session: AsyncSession, message_id: int, kind: str, at: datetime, **detail: object
) -> None:
    session.add(MessageEvent(message_id=message_id, kind=kind, at=at, detail=detail))


# --- the sender's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedReply:
    id: int
    message_id: int
    channel: str
    endpoint: str
    attempts: int
    failures: int
    retries: int
    retry_interval_seconds: int


async def claim_due(
    session: AsyncSession, now: datetime, batch: int, lease: timedelta
) -> list[ClaimedReply]:
    """Up to `batch` due replies, leased: their next try moves past the lease in the same
    statement, so another process (`FOR UPDATE SKIP LOCKED` on PostgreSQL) takes others, and
    a sender that dies leaves them due when the lease ends."""
    r = ReplyOutbox
    due = r.status.in_(WAITING) & (r.next_attempt_at <= now)
    ids = (
        select(r.id)
        .where(due)
        .order_by(r.next_attempt_at, r.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(r)
        .where(r.id.in_(ids.scalar_subquery()), due)
        .values(next_attempt_at=now + lease)
        .returning(
            r.id,
            r.message_id,
            r.channel,
            r.endpoint,
            r.attempts,
            r.failures,
            r.retries,
            r.retry_interval_seconds,
        )
        .execution_options(synchronize_session=False)
    )
    return [
        ClaimedReply(
            id=row.id,
            message_id=row.message_id,
            channel=row.channel,
            endpoint=row.endpoint,
            attempts=row.attempts,
            failures=row.failures,
            retries=row.retries,
            retry_interval_seconds=row.retry_interval_seconds,
        )
        for row in result.all()
    ]


async def reply_bytes(session: AsyncSession, message_id: int) -> tuple[bytes, str] | None:
    found = (
        await session.execute(
            select(Receipt.body, Receipt.content_type).where(Receipt.message_id == message_id)
        )
    ).first()
    return None if found is None else (found[0], found[1])


async def message_environment(session: AsyncSession, message_id: int) -> str | None:
    """The environment the message came to (pilot, test, production): a reply mail leaves
    from KPR's EDI address of that environment."""
    found = await session.scalar(select(Message.environment).where(Message.id == message_id))
    return None if found is None else str(found)


async def mark_delivered(session: AsyncSession, reply: ClaimedReply, now: datetime) -> None:
    await session.execute(
        update(ReplyOutbox)
        .where(ReplyOutbox.id == reply.id)
        .values(
            status="delivered",
            delivered_at=now,
            attempts=ReplyOutbox.attempts + 1,
            failures=0,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )


async def mark_failed(
    session: AsyncSession, reply: ClaimedReply, *, next_at: datetime, slow: bool, error: str
) -> None:
    await session.execute(
        update(ReplyOutbox)
        .where(ReplyOutbox.id == reply.id, ReplyOutbox.status.in_(WAITING))
        .values(
            status="slow" if slow else "pending",
            attempts=ReplyOutbox.attempts + 1,
            failures=ReplyOutbox.failures + 1,
            next_attempt_at=next_at,
            last_error=error[:500],
        )
        .execution_options(synchronize_session=False)
    )


async def waiting_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ReplyOutbox.status, func.count())
        .where(ReplyOutbox.status.in_(WAITING))
        .group_by(ReplyOutbox.status)
    )
    counts = dict.fromkeys(WAITING, 0)
    counts.update({str(s): int(n) for s, n in rows.all()})
    return counts


# --- the sender's Acknowledgment of our reply ------------------------------------------------


async def acknowledge(
    session: AsyncSession, *, party_id: int, ref_to: str, ack_message_id: int, now: datetime
) -> int | None:
    """Record the party's Acknowledgment of the reply it names; the reply's message id, or
    None when no reply of ours to that party has that MessageId."""
    found = (
        await session.execute(
            select(ReplyOutbox.id, ReplyOutbox.message_id).where(
                ReplyOutbox.reply_ebms_message_id == ref_to, ReplyOutbox.party_id == party_id
            )
        )
    ).first()
    if found is None:
        return None
    await session.execute(
        update(ReplyOutbox)
        .where(ReplyOutbox.id == found[0], ReplyOutbox.acknowledged_at.is_(None))
        .values(acknowledged_at=now, ack_message_id=ack_message_id)
        .execution_options(synchronize_session=False)
    )
    return int(found[1])
