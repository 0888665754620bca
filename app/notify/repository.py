"""All SQL of the notification outbox."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import NotificationOutbox


async def pending_notifications(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(NotificationOutbox)
        .where(NotificationOutbox.status == "pending")
    )
    return int(count or 0)
