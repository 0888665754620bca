"""The AMQP inbox and outbox in the audit database (tables `amqp_inbox`, `amqp_outbox`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, Update, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.amqp.core_port import InboxMessage
from app.amqp.envelope import Envelope
from app.models import AmqpInbox, AmqpOutbox, MessageEvent, utcnow

_Row = TypeVar("_Row", AmqpInbox, AmqpOutbox)


def _due(model: type[_Row], limit: int) -> Select[_Row]:
    """The rows whose (next) attempt is due, oldest first: inbox and outbox alike."""
    return (
        select(model)
        .where(model.status == "pending", model.next_attempt_at <= utcnow())
        .order_by(model.next_attempt_at, model.id)
        .limit(limit)
    )


Sessions = async_sessionmaker[AsyncSession]

# Minutes, not milliseconds: a revocation list that cannot be fetched now may come back later.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
)
MAX_ATTEMPTS = 48
# The inbox row of a message over KPR_MAX_MESSAGE_BYTES keeps its properties and this size,
# not its body: the error to the sender names the limit, nothing big is written.
BODY_BYTES = "body_bytes"


def next_attempt(attempts: int, now: datetime) -> datetime:
    return now + BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def _retry_later(attempts: int, reason: str) -> dict[str, Any]:
    """The columns of a row tried again later (the inbox's and the outbox's back-off)."""
    return {
        "attempts": attempts,
        "status": "failed" if attempts >= MAX_ATTEMPTS else "pending",
        "next_attempt_at": next_attempt(attempts, utcnow()),
        "last_error": reason[:2000],
    }


async def store_inbox(
    sessions: Sessions, queue: str, envelope: Envelope, body: bytes, max_bytes: int | None = None
) -> bool:
    """Commit a received message; False when its message-id is already stored (a redelivery).
    A body over `max_bytes` is not stored, only its size (the processor refuses it)."""
    properties = envelope.as_json()
    if max_bytes is not None and len(body) > max_bytes:
        properties[BODY_BYTES] = len(body)
        body = b""
    async with sessions() as session:
        session.add(
            AmqpInbox(
                amqp_message_id=envelope.message_id,
                queue=queue,
                properties=properties,
                body=body,
            )
        )
        try:
            await session.commit()
        except IntegrityError:
            return False
    return True


async def due_inbox(sessions: Sessions, limit: int = 16) -> list[InboxMessage]:
    async with sessions() as session:
        rows = (await session.scalars(_due(AmqpInbox, limit))).all()
        return [
            InboxMessage(
                r.id,
                r.queue,
                Envelope.from_json(r.properties),
                await _body(session, r),
                r.received_at,
                attempts=r.attempts,
                size=r.properties.get(BODY_BYTES),
            )
            for r in rows
        ]


async def _body(session: AsyncSession, row: AmqpInbox) -> bytes:
    await session.refresh(row, ["body"])
    return row.body


async def inbox_status(sessions: Sessions, amqp_message_id: str) -> str | None:
    async with sessions() as session:
        found: str | None = await session.scalar(
            select(AmqpInbox.status).where(AmqpInbox.amqp_message_id == amqp_message_id)
        )
        return found


@dataclass(frozen=True, slots=True)
class Reply:
    dedup_key: str
    queue: str
    envelope: Envelope
    body: bytes


def _done(inbox_id: int, message_id: int | None) -> Update:
    return (
        update(AmqpInbox)
        .where(AmqpInbox.id == inbox_id)
        .values(status="done", done_at=utcnow(), message_id=message_id, last_error=None)
    )


async def finish_inbox(
    sessions: Sessions, inbox_id: int, message_id: int | None, replies: list[Reply]
) -> None:
    """Done, and its answers in the outbox, in one transaction: nothing sent twice."""
    async with sessions() as session, session.begin():
        await session.execute(_done(inbox_id, message_id))
        for item in replies:
            existing = await session.scalar(
                select(AmqpOutbox.id).where(AmqpOutbox.dedup_key == item.dedup_key)
            )
            if existing is None:
                session.add(
                    AmqpOutbox(
                        inbox_id=inbox_id,
                        dedup_key=item.dedup_key,
                        queue=item.queue,
                        properties=item.envelope.as_json(),
                        body=item.body,
                    )
                )


async def postpone_inbox(sessions: Sessions, message: InboxMessage, reason: str) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(AmqpInbox)
            .where(AmqpInbox.id == message.inbox_id)
            .values(**_retry_later(message.attempts + 1, reason))
        )


async def report_about(sessions: Sessions, original_message_id: str) -> int | None:
    """The audit's message row that our reply `original_message_id` answered, if it is ours
    (a sender's report on `{her}_error` names the reply by its message-id)."""
    async with sessions() as session:
        found: int | None = await session.scalar(
            select(AmqpInbox.message_id)
            .join(AmqpOutbox, AmqpOutbox.inbox_id == AmqpInbox.id)
            .where(AmqpOutbox.properties["message_id"].as_string() == original_message_id)
            .limit(1)
        )
        return found


async def record_report(
    sessions: Sessions, inbox_id: int, message_id: int | None, detail: dict[str, str]
) -> None:
    """The report's inbox row done, linked to the message it is about, and an event on that
    message (`amqp_error_report`), so the audit shows what the sender said."""
    async with sessions() as session, session.begin():
        await session.execute(_done(inbox_id, message_id))
        if message_id is not None:
            session.add(
                MessageEvent(message_id=message_id, kind="amqp_error_report", detail=detail)
            )


@dataclass(frozen=True, slots=True)
class Outgoing:
    outbox_id: int
    queue: str
    envelope: Envelope
    body: bytes
    attempts: int


async def due_outbox(sessions: Sessions, limit: int = 32) -> list[Outgoing]:
    async with sessions() as session:
        rows = (await session.scalars(_due(AmqpOutbox, limit))).all()
        return [
            Outgoing(r.id, r.queue, Envelope.from_json(r.properties), r.body, r.attempts)
            for r in rows
        ]


async def outbox_sent(sessions: Sessions, outbox_id: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(AmqpOutbox)
            .where(AmqpOutbox.id == outbox_id)
            .values(status="sent", sent_at=utcnow(), last_error=None)
        )


async def outbox_failed(sessions: Sessions, item: Outgoing, reason: str) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(AmqpOutbox)
            .where(AmqpOutbox.id == item.outbox_id)
            .values(**_retry_later(item.attempts + 1, reason))
        )
