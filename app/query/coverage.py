"""All SQL of coverage: per municipality, what KPR has received in one environment and
reporting-year window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Finding, IplosNotification, Message, Receipt
from app.query.feilliste import corrected_clause, failing_in

READABLE = ("1", "3")  # AppRec status: KPR could read the message


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    kommune_nr: str
    messages: int
    readable: int
    first_readable_at: datetime | None
    last_readable_at: datetime | None
    best_apprec_status: str | None


async def deliveries(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, Delivery]:
    """Per municipality with any message in the window: counts, first/last readable, best
    AppRec status (1 before 3 before 2)."""
    m, r = Message, Receipt
    readable = r.apprec_status.in_(READABLE)
    rank = case(
        (r.apprec_status == "1", 1), (r.apprec_status == "3", 2), (r.apprec_status == "2", 3)
    )
    rows = await session.execute(
        select(
            m.kommune_nr,
            func.count(m.id),
            func.count(case((readable, 1))),
            func.min(case((readable, m.received_at))),
            func.max(case((readable, m.received_at))),
            func.min(rank),
        )
        .outerjoin(r, r.message_id == m.id)
        .where(
            m.environment == environment,
            m.kommune_nr.is_not(None),
            m.received_at >= received_from,
            m.received_at < received_to,
        )
        .group_by(m.kommune_nr)
    )
    best = {1: "1", 2: "3", 3: "2"}
    out: dict[str, Delivery] = {}
    for k, total, ok, first, last, rank_min in rows.all():
        first_at = _aware(first)
        last_at = _aware(last)
        out[k] = Delivery(
            kommune_nr=k,
            messages=int(total),
            readable=int(ok),
            first_readable_at=first_at,
            last_readable_at=last_at,
            best_apprec_status=best.get(rank_min) if rank_min is not None else None,
        )
    return out


def _aware(value: datetime | str | None) -> datetime | None:
    """MIN/MAX over a CASE loses the column type on SQLite (a string comes back)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def accepted_counts(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, int]:
    n, m = IplosNotification, Message
    rows = await session.execute(
        select(n.kommune_nr, func.count(n.id))
        .join(m, m.id == n.message_id)
        .where(
            n.environment == environment,
            m.received_at >= received_from,
            m.received_at < received_to,
        )
        .group_by(n.kommune_nr)
    )
    return {k: int(c) for k, c in rows.all()}


async def open_error_counts(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, int]:
    f, m = Finding, Message
    rows = await session.execute(
        select(f.kommune_nr, func.count(f.id))
        .join(m, m.id == f.message_id)
        .where(
            *failing_in(),
            f.kommune_nr.is_not(None),
            m.kommune_nr == f.kommune_nr,
            m.environment == environment,
            m.received_at >= received_from,
            m.received_at < received_to,
            ~corrected_clause(),
        )
        .group_by(f.kommune_nr)
    )
    return {k: int(c) for k, c in rows.all() if k is not None}
