"""A message's asynchronous reply (issue 26) and its delivery tries, as the API shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MessageEvent
from app.replies.models import ReplyOutbox


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    at: datetime
    outcome: str  # delivered | failed
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedReply:
    id: int
    channel: str
    endpoint: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    tries: list[Attempt] = field(default_factory=list)


async def replies_of(session: AsyncSession, message_id: int) -> list[QueuedReply]:
    """The message's queued reply (at most one) with every try from its events."""
    rows = (
        await session.scalars(select(ReplyOutbox).where(ReplyOutbox.message_id == message_id))
    ).all()
    if not rows:
        return []
    events = await session.scalars(
        select(MessageEvent)
        .where(MessageEvent.message_id == message_id, MessageEvent.kind == "reply_attempt")
        .order_by(MessageEvent.id)
    )
    tries: dict[int, list[Attempt]] = {}
    for e in events:
        detail: dict[str, Any] = e.detail or {}
        reply = detail.get("reply")
        if isinstance(reply, int):
            tries.setdefault(reply, []).append(
                Attempt(
                    at=e.at,
                    outcome=str(detail.get("outcome") or ""),
                    http_status=detail.get("http_status")
                    if isinstance(detail.get("http_status"), int)
                    else None,
                    error=str(detail["error"]) if detail.get("error") else None,
                )
            )
    return [
        QueuedReply(
            id=r.id,
            channel=r.channel,
            endpoint=r.endpoint,
            status=r.status,
            attempts=r.attempts,
            next_attempt_at=None if r.status == "delivered" else r.next_attempt_at,
            last_error=r.last_error,
            created_at=r.created_at,
            delivered_at=r.delivered_at,
            acknowledged_at=r.acknowledged_at,
            tries=tries.get(r.id, []),
        )
        for r in rows
    ]
