"""All SQL of the operators' statistics: counts over a range of received times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.models import Finding, Message


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    key: str
    count: int


def _window(start: datetime, end: datetime, environment: str | None) -> list[object]:
    conditions: list[object] = [Message.received_at >= start, Message.received_at < end]
    if environment is not None:
        conditions.append(Message.environment == environment)
    return conditions


async def messages_by(
    session: AsyncSession, column: str, start: datetime, end: datetime, environment: str | None
) -> list[Count]:
    """Messages per `kommune_nr` or `status` in the window."""
    key = {"kommune_nr": Message.kommune_nr, "status": Message.status}[column]
    rows = await session.execute(
        select(key, func.count(Message.id))
        .where(*_window(start, end, environment))  # type: ignore[arg-type]
        .group_by(key)
        .order_by(key)
    )
    return [Count(key=k or "-", count=int(c)) for k, c in rows.all()]


async def messages_by_day(
    session: AsyncSession, start: datetime, end: datetime, environment: str | None
) -> list[Count]:
    """Messages per UTC day (YYYY-MM-DD) in the window."""
    day: ColumnElement[str]
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Message.received_at), "YYYY-MM-DD")
    else:  # SQLite stores UTC text
        day = func.strftime("%Y-%m-%d", Message.received_at)
    rows = await session.execute(
        select(day, func.count(Message.id).label("n"))
        .where(*_window(start, end, environment))  # type: ignore[arg-type]
        .group_by(day)
        .order_by(day)
    )
    return [Count(key=str(r[0]), count=int(r[1] or 0)) for r in rows.all()]


async def findings_by_rule(
    session: AsyncSession, start: datetime, end: datetime, environment: str | None
) -> list[Count]:
    rows = await session.execute(
        select(Finding.rule_id, func.count(Finding.id))
        .join(Message, Message.id == Finding.message_id)
        .where(*_window(start, end, environment))  # type: ignore[arg-type]
        .group_by(Finding.rule_id)
        .order_by(Finding.rule_id)
    )
    return [Count(key=k, count=int(c)) for k, c in rows.all()]
