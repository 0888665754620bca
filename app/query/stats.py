"""All SQL of the operators' statistics: counts over a range of received times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Finding, Message
from app.query import totals


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
    day = totals.utc_day(session, Message.received_at)
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
    """Whole UTC days from the running totals (app/query/totals.py), the partial days at
    either end from the findings themselves."""
    first_day = _midnight(start) + (timedelta(days=1) if start != _midnight(start) else timedelta())
    end_day = _midnight(end)
    if first_day >= end_day or not await totals.built(session):
        return _counts((await _findings_by_rule(session, start, end, environment)).items())
    whole = await totals.rule_counts(session, environment, first_day.date(), end_day.date())
    head = await _findings_by_rule(session, start, first_day, environment)
    tail = await _findings_by_rule(session, end_day, end, environment)
    return _counts(totals.merge_counts(whole.items(), head.items(), tail.items()).items())


def _midnight(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def _counts(pairs: Iterable[tuple[str, int]]) -> list[Count]:
    return [Count(key=k, count=n) for k, n in sorted(pairs)]


async def _findings_by_rule(
    session: AsyncSession, start: datetime, end: datetime, environment: str | None
) -> dict[str, int]:
    if start >= end:
        return {}
    rows = await session.execute(
        select(Finding.rule_id, func.count(Finding.id))
        .join(Message, Message.id == Finding.message_id)
        .where(*_window(start, end, environment))  # type: ignore[arg-type]
        .group_by(Finding.rule_id)
        .order_by(Finding.rule_id)
    )
    return {k: int(c) for k, c in rows.all()}
