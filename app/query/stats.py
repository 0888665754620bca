"""All SQL of the operators' statistics: counts over a range of received times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

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


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageCounts:
    by_day: list[Count]  # UTC day, YYYY-MM-DD
    by_kommune: list[Count]  # `-`: none
    by_status: list[Count]


async def message_counts(
    session: AsyncSession, start: datetime, end: datetime, environment: str | None
) -> MessageCounts:
    """Messages per UTC day, municipality and status in the window: on PostgreSQL in one
    pass over the window (GROUPING SETS), elsewhere one query each."""
    keys: dict[str, ColumnElement[Any]] = {
        "day": totals.utc_day(session, Message.received_at),
        "kommune": Message.kommune_nr.expression,
        "status": Message.status.expression,
    }
    where = _window(start, end, environment)
    counts: dict[str, dict[str, int]] = {name: {} for name in keys}
    if session.get_bind().dialect.name == "postgresql":
        grouped = [func.grouping(key) for key in keys.values()]
        rows = await session.execute(
            select(*keys.values(), *grouped, func.count(Message.id))
            .where(*where)  # type: ignore[arg-type]
            .group_by(func.grouping_sets(*(tuple_(key) for key in keys.values())))
        )
        for row in rows.all():
            values, grouped_flags, n = row[:3], row[3:6], row[6]
            # GROUPING(key) is 0 for the one key this row counts by
            at = list(grouped_flags).index(0)
            counts[list(keys)[at]][values[at] or "-"] = int(n)
    else:
        for name, key in keys.items():
            rows = await session.execute(
                select(key, func.count(Message.id)).where(*where).group_by(key)  # type: ignore[arg-type]
            )
            counts[name] = {(row[0] or "-"): int(row[1]) for row in rows.all()}
    by = {name: _counts(c.items()) for name, c in counts.items()}
    return MessageCounts(by_day=by["day"], by_kommune=by["kommune"], by_status=by["status"])


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
